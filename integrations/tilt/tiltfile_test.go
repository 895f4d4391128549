package tilt_test

// The extension's Tiltfile, loaded with the Starlark interpreter Tilt uses
// and the builtins it calls, shaped as Tilt's own (same parameter names,
// same checks); and its start script, run with stand-ins for kubefwd and
// sudo. Neither needs Tilt or a cluster.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"

	"github.com/kubefwd/kubefwd/test/hostiletest"
)

// What Tilt gives the Tiltfile.
type tiltHost struct {
	subcommand string // config.tilt_subcommand
	osName     string // os.name: posix or nt
	context    string // k8s_context()
	env        map[string]string
}

// What the Tiltfile declared.
type declared struct {
	resources map[string]localResource
	order     []string
	buttons   map[string]uiButton
	cmds      map[string]tiltCmd
	locals    []string // local() calls: there must be none
}

type localResource struct {
	serveCmd     []string
	serveEnv     map[string]string
	resourceDeps []string
}

type uiButton struct {
	text, icon              string
	componentType, componID string
	annotations             map[string]string
}

type tiltCmd struct {
	args        []string
	dir         string
	startOn     []string
	annotations map[string]string
}

// Tilt's dialect (internal/tiltfile/starkit).
var tiltFileOptions = &syntax.FileOptions{Set: true, GlobalReassign: true, Recursion: true, TopLevelControl: true, While: true}

// loadTiltfile runs a user's Tiltfile whose body is `load(the extension)`
// followed by call, from mainDir, as Tilt would.
func loadTiltfile(t *testing.T, h tiltHost, mainDir, call string) (*declared, error) {
	t.Helper()
	ext, err := filepath.Abs(filepath.Join("kubefwd", "Tiltfile"))
	if err != nil {
		t.Fatal(err)
	}
	d := &declared{resources: map[string]localResource{}, buttons: map[string]uiButton{}, cmds: map[string]tiltCmd{}}
	predeclared := h.builtins(d, mainDir)

	main := filepath.Join(mainDir, "Tiltfile")
	src := fmt.Sprintf("load(%q, 'kubefwd')\n%s\n", ext, call)
	thread := &starlark.Thread{
		Name:  "tiltfile",
		Print: func(_ *starlark.Thread, msg string) { t.Log(msg) },
		Load: func(_ *starlark.Thread, module string) (starlark.StringDict, error) {
			data, err := os.ReadFile(module)
			if err != nil {
				return nil, err
			}
			return starlark.ExecFileOptions(tiltFileOptions, &starlark.Thread{Name: module, Print: func(_ *starlark.Thread, msg string) { t.Log(msg) }},
				module, data, withValue(predeclared, "__file__", starlark.String(module)))
		},
	}
	_, err = starlark.ExecFileOptions(tiltFileOptions, thread, main, src, withValue(predeclared, "__file__", starlark.String(main)))
	if len(d.locals) > 0 {
		t.Errorf("the Tiltfile ran local() at load: %q", d.locals)
	}
	var evalErr *starlark.EvalError
	if errors.As(err, &evalErr) {
		// The message alone, as Tilt shows it above its traceback.
		return d, errors.New(evalErr.Msg)
	}
	return d, err
}

func withValue(d starlark.StringDict, k string, v starlark.Value) starlark.StringDict {
	out := starlark.StringDict{k: v}
	for n, x := range d {
		out[n] = x
	}
	return out
}

func (h tiltHost) builtins(d *declared, mainDir string) starlark.StringDict {
	b := func(name string, fn func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error)) *starlark.Builtin {
		return starlark.NewBuiltin(name, fn)
	}
	module := func(name string, members starlark.StringDict) *starlarkstruct.Module {
		return &starlarkstruct.Module{Name: name, Members: members}
	}
	osName := h.osName
	if osName == "" {
		osName = "posix"
	}
	return starlark.StringDict{
		"fail": b("fail", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var msg string
			if err := starlark.UnpackArgs(fn.Name(), args, kw, "msg", &msg); err != nil {
				return nil, err
			}
			return nil, errors.New(msg)
		}),
		"local": b("local", func(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
			d.locals = append(d.locals, args.String())
			return starlark.String(""), nil
		}),
		// Tilt has it; the old Tiltfile piped its result into local().
		"encode_yaml_stream": b("encode_yaml_stream", func(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
			return starlark.String(args.String()), nil
		}),
		"k8s_context": b("k8s_context", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackArgs(fn.Name(), args, kw); err != nil {
				return nil, err
			}
			return starlark.String(h.context), nil
		}),
		"local_resource": b("local_resource", d.localResource),
		"config": module("config", starlark.StringDict{
			"tilt_subcommand": starlark.String(h.subcommand),
			"main_dir":        starlark.String(mainDir),
		}),
		"os": module("os", starlark.StringDict{
			"name": starlark.String(osName),
			"path": module("os.path", starlark.StringDict{
				"join": b("os.path.join", func(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
					var parts []string
					for i, a := range args {
						s, ok := starlark.AsString(a)
						if !ok {
							return nil, fmt.Errorf("os.path.join() only accepts strings. Argument #%d: %s", i, a)
						}
						parts = append(parts, s)
					}
					return starlark.String(filepath.Join(parts...)), nil
				}),
				"dirname": b("os.path.dirname", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
					var p string
					if err := starlark.UnpackArgs(fn.Name(), args, kw, "path", &p); err != nil {
						return nil, err
					}
					return starlark.String(filepath.Dir(p)), nil
				}),
			}),
			"getenv": b("os.getenv", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
				var key string
				var def starlark.Value = starlark.None
				if err := starlark.UnpackArgs(fn.Name(), args, kw, "key", &key, "default?", &def); err != nil {
					return nil, err
				}
				if v, ok := h.env[key]; ok {
					return starlark.String(v), nil
				}
				return def, nil
			}),
		}),
		"v1alpha1": module("v1alpha1", starlark.StringDict{
			"ui_button":     b("v1alpha1.ui_button", d.uiButton),
			"cmd":           b("v1alpha1.cmd", d.cmd),
			"start_on_spec": b("v1alpha1.start_on_spec", startOnSpec),
		}),
	}
}

func (d *declared) localResource(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var name string
	var cmd, deps, triggerMode, resourceDeps, ignore, autoInit, serveCmd, cmdBat, serveCmdBat, allowParallel,
		links, labels, env, serveEnv, readinessProbe, dir, serveDir starlark.Value
	err := starlark.UnpackArgs(fn.Name(), args, kw, "name", &name, "cmd?", &cmd, "deps?", &deps,
		"trigger_mode?", &triggerMode, "resource_deps?", &resourceDeps, "ignore?", &ignore, "auto_init?", &autoInit,
		"serve_cmd?", &serveCmd, "cmd_bat?", &cmdBat, "serve_cmd_bat?", &serveCmdBat, "allow_parallel?", &allowParallel,
		"links?", &links, "labels?", &labels, "env?", &env, "serve_env?", &serveEnv,
		"readiness_probe?", &readinessProbe, "dir?", &dir, "serve_dir?", &serveDir)
	if err != nil {
		return nil, err
	}
	if _, dup := d.resources[name]; dup {
		return nil, fmt.Errorf("local_resource named %q already exists", name)
	}
	r := localResource{}
	if r.serveCmd, err = stringList("serve_cmd", serveCmd); err != nil {
		return nil, err
	}
	if r.resourceDeps, err = stringList("resource_deps", resourceDeps); err != nil {
		return nil, err
	}
	if r.serveEnv, err = stringMap("serve_env", serveEnv); err != nil {
		return nil, err
	}
	d.resources[name] = r
	d.order = append(d.order, name)
	return starlark.None, nil
}

func (d *declared) uiButton(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var name, text, icon, svg string
	var labels, annotations, location, inputs starlark.Value
	var disabled, confirm bool
	err := starlark.UnpackArgs(fn.Name(), args, kw, "name", &name, "labels?", &labels, "annotations?", &annotations,
		"location?", &location, "text?", &text, "icon_name?", &icon, "icon_svg?", &svg, "disabled?", &disabled,
		"requires_confirmation?", &confirm, "inputs?", &inputs)
	if err != nil {
		return nil, err
	}
	btn := uiButton{text: text, icon: icon}
	if btn.annotations, err = stringMap("annotations", annotations); err != nil {
		return nil, err
	}
	loc, err := stringMap("location", location)
	if err != nil {
		return nil, err
	}
	for k, v := range loc {
		switch k {
		case "component_id":
			btn.componID = v
		case "component_type":
			btn.componentType = v
		default:
			return nil, fmt.Errorf("Unexpected attribute name: %s", k)
		}
	}
	if _, dup := d.buttons[name]; dup {
		return nil, fmt.Errorf("UIButton %q registered twice", name)
	}
	d.buttons[name] = btn
	return starlark.None, nil
}

// startOnSpec is a dict, as Tilt's is; like Tilt's, it takes no
// start_after from a Tiltfile.
func startOnSpec(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var startAfter, uiButtons starlark.Value
	if err := starlark.UnpackArgs(fn.Name(), args, kw, "start_after?", &startAfter, "ui_buttons?", &uiButtons); err != nil {
		return nil, err
	}
	if startAfter != nil {
		return nil, errors.New("Unexpected attribute name: start_after")
	}
	dict := starlark.NewDict(1)
	if uiButtons != nil {
		if err := dict.SetKey(starlark.String("ui_buttons"), uiButtons); err != nil {
			return nil, err
		}
	}
	return dict, nil
}

func (d *declared) cmd(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var name string
	var labels, annotations, cmdArgs, dir, env, probe, restartOn, startOn, disable starlark.Value
	err := starlark.UnpackArgs(fn.Name(), args, kw, "name", &name, "labels?", &labels, "annotations?", &annotations,
		"args?", &cmdArgs, "dir?", &dir, "env?", &env, "readiness_probe?", &probe, "restart_on?", &restartOn,
		"start_on?", &startOn, "disable_source?", &disable)
	if err != nil {
		return nil, err
	}
	c := tiltCmd{}
	if c.args, err = stringList("args", cmdArgs); err != nil {
		return nil, err
	}
	if dir != nil {
		s, ok := starlark.AsString(dir)
		if !ok {
			return nil, fmt.Errorf("dir: want a string, got %s", dir.Type())
		}
		c.dir = s
	}
	if c.annotations, err = stringMap("annotations", annotations); err != nil {
		return nil, err
	}
	if startOn != nil {
		dict, ok := startOn.(*starlark.Dict)
		if !ok {
			return nil, fmt.Errorf("start_on: expected dict, actual: %v", startOn.Type())
		}
		for _, kv := range dict.Items() {
			if k, _ := starlark.AsString(kv[0]); k != "ui_buttons" {
				return nil, fmt.Errorf("Unexpected attribute name: %s", k)
			}
			if c.startOn, err = stringList("ui_buttons", kv[1]); err != nil {
				return nil, err
			}
		}
	}
	if _, dup := d.cmds[name]; dup {
		return nil, fmt.Errorf("Cmd %q registered twice", name)
	}
	d.cmds[name] = c
	return starlark.None, nil
}

func stringList(what string, v starlark.Value) ([]string, error) {
	if v == nil || v == starlark.None {
		return nil, nil
	}
	if s, ok := v.(starlark.String); ok {
		return []string{string(s)}, nil
	}
	seq, ok := v.(starlark.Iterable)
	if !ok {
		return nil, fmt.Errorf("%s: want a list of strings, got %s", what, v.Type())
	}
	var out []string
	it := seq.Iterate()
	defer it.Done()
	var x starlark.Value
	for it.Next(&x) {
		s, ok := starlark.AsString(x)
		if !ok {
			return nil, fmt.Errorf("%s: want a list of strings, it holds a %s", what, x.Type())
		}
		out = append(out, s)
	}
	return out, nil
}

func stringMap(what string, v starlark.Value) (map[string]string, error) {
	if v == nil || v == starlark.None {
		return nil, nil
	}
	dict, ok := v.(*starlark.Dict)
	if !ok {
		return nil, fmt.Errorf("%s: want a dict, got %s", what, v.Type())
	}
	out := map[string]string{}
	for _, kv := range dict.Items() {
		k, ok1 := starlark.AsString(kv[0])
		val, ok2 := starlark.AsString(kv[1])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%s: want strings, got %s: %s", what, kv[0].Type(), kv[1].Type())
		}
		out[k] = val
	}
	return out, nil
}

func TestTiltfileSubcommands(t *testing.T) {
	script, _ := filepath.Abs(filepath.Join("kubefwd", "start-kubefwd.sh"))
	home := tiltHost{context: "kind-dev", env: map[string]string{"HOME": "/home/dev"}}
	for _, tc := range []struct {
		subcommand        string
		resources, button bool
	}{
		{"up", true, true},
		{"ci", true, true},
		{"down", false, false},
		// Only read: the resources show what `up` would run; the button
		// and its Cmd exist only in a running session.
		{"alpha tiltfile-result", true, false},
		{"docker-prune", true, false},
	} {
		t.Run(tc.subcommand, func(t *testing.T) {
			h := home
			h.subcommand = tc.subcommand
			main := t.TempDir()
			d, err := loadTiltfile(t, h, main, "kubefwd()")
			if err != nil {
				t.Fatal(err)
			}
			if !tc.resources {
				if len(d.order)+len(d.buttons)+len(d.cmds) > 0 {
					t.Fatalf("declared %v, %v, %v; want nothing", d.order, d.buttons, d.cmds)
				}
				return
			}
			if want := []string{"kubefwd", "kubefwd:namespaces"}; !slices.Equal(d.order, want) {
				t.Fatalf("resources %v, want %v", d.order, want)
			}
			svc := d.resources["kubefwd"]
			wantSvc := []string{script, "kubefwd", "tilt", "auto", "--context", "kind-dev", "--idle"}
			if !slices.Equal(svc.serveCmd, wantSvc) {
				t.Errorf("kubefwd serve_cmd\n%q, want\n%q", svc.serveCmd, wantSvc)
			}
			if want := map[string]string{"KUBECONFIG": "/home/dev/.kube/config"}; !reflect.DeepEqual(svc.serveEnv, want) {
				t.Errorf("kubefwd serve_env %v, want %v", svc.serveEnv, want)
			}
			follow := d.resources["kubefwd:namespaces"]
			if want := []string{"kubefwd", "namespaces", "follow-tilt", "--instance", "tilt"}; !slices.Equal(follow.serveCmd, want) {
				t.Errorf("follower %q, want %q", follow.serveCmd, want)
			}
			if !slices.Equal(follow.resourceDeps, []string{"kubefwd"}) {
				t.Errorf("follower resource_deps %q", follow.resourceDeps)
			}
			if !tc.button {
				if len(d.buttons)+len(d.cmds) > 0 {
					t.Fatalf("declared buttons %v and cmds %v under %q", d.buttons, d.cmds, tc.subcommand)
				}
				return
			}
			owner := map[string]string{"tilt.dev/resource": "kubefwd"}
			wantBtn := uiButton{text: "Refresh", icon: "refresh", componentType: "Resource", componID: "kubefwd", annotations: owner}
			if got := d.buttons["kubefwd-refresh"]; !reflect.DeepEqual(got, wantBtn) {
				t.Errorf("button %+v, want %+v", got, wantBtn)
			}
			wantCmd := tiltCmd{args: []string{"kubefwd", "refresh", "--instance", "tilt"}, dir: main, startOn: []string{"kubefwd-refresh"}, annotations: owner}
			if got := d.cmds["kubefwd-refresh"]; !reflect.DeepEqual(got, wantCmd) {
				t.Errorf("cmd %+v, want %+v", got, wantCmd)
			}
		})
	}
}

func TestTiltfileOptions(t *testing.T) {
	main := t.TempDir()
	for _, tc := range []struct {
		name    string
		host    tiltHost
		call    string
		svc     []string // the kubefwd resource's serve_cmd after the script and its 3 arguments
		follow  []string // the follower's command; nil: no follower
		binary  string
		kubecfg string
	}{{
		name:   "extra namespaces and short names while following",
		call:   "kubefwd(extra_namespaces=['db', 'kind-other/cache', 'db'], short_names_from='shop')",
		svc:    []string{"--context", "kind-dev", "--idle"},
		follow: []string{"--extra-namespace=db", "--extra-namespace=kind-other/cache", "--short-names-from=shop"},
	}, {
		name: "a fixed list: short names first, then the list, then the extras, once each",
		call: "kubefwd(namespaces=['web', 'shop'], extra_namespaces=['db', 'web'], short_names_from='shop')",
		svc:  []string{"--context", "kind-dev", "-n", "shop", "-n", "web", "-n", "db"},
	}, {
		name: "short names from a namespace not in the fixed list",
		call: "kubefwd(namespaces=('web',), short_names_from='shop')",
		svc:  []string{"--context", "kind-dev", "-n", "shop", "-n", "web"},
	}, {
		name:   "a relative binary is the user's Tiltfile's",
		call:   "kubefwd(binary='./bin/kubefwd')",
		svc:    []string{"--context", "kind-dev", "--idle"},
		follow: []string{},
		binary: filepath.Join(main, "bin", "kubefwd"),
	}, {
		name:   "a relative binary without ./",
		call:   "kubefwd(binary='../tools/kubefwd')",
		svc:    []string{"--context", "kind-dev", "--idle"},
		follow: []string{},
		binary: filepath.Join(filepath.Dir(main), "tools", "kubefwd"),
	}, {
		name:   "an absolute binary as it is",
		call:   "kubefwd(binary='/opt/kubefwd/bin/kubefwd')",
		svc:    []string{"--context", "kind-dev", "--idle"},
		follow: []string{},
		binary: "/opt/kubefwd/bin/kubefwd",
	}, {
		name:   "the user's -x names the context",
		call:   "kubefwd(args=['-x', 'kind-dev', '-x', 'kind-other'])",
		svc:    []string{"-x", "kind-dev", "-x", "kind-other", "--idle"},
		follow: []string{},
	}, {
		name:   "the user's --context=",
		call:   "kubefwd(args=['--context=kind-other'])",
		svc:    []string{"--context=kind-other", "--idle"},
		follow: []string{},
	}, {
		name:   "the user's -xNAME",
		call:   "kubefwd(args=['-xkind-other'])",
		svc:    []string{"-xkind-other", "--idle"},
		follow: []string{},
	}, {
		name:   "the user's --kubeconfig",
		call:   "kubefwd(args=['--kubeconfig', '/k/config'])",
		svc:    []string{"--kubeconfig", "/k/config", "--idle"},
		follow: []string{},
	}, {
		name:   "the user's -c",
		call:   "kubefwd(args=['-c', '/k/config'])",
		svc:    []string{"-c", "/k/config", "--idle"},
		follow: []string{},
	}, {
		name:   "other flags leave the context to the extension",
		call:   "kubefwd(args=['-d', 'local', '--domain=cluster'])",
		svc:    []string{"-d", "local", "--domain=cluster", "--context", "kind-dev", "--idle"},
		follow: []string{},
	}, {
		name:    "the user's KUBECONFIG goes through",
		host:    tiltHost{env: map[string]string{"HOME": "/home/dev", "KUBECONFIG": "/home/dev/a:/home/dev/b"}},
		call:    "kubefwd()",
		svc:     []string{"--context", "kind-dev", "--idle"},
		follow:  []string{},
		kubecfg: "/home/dev/a:/home/dev/b",
	}, {
		name:    "an empty KUBECONFIG is the default",
		host:    tiltHost{env: map[string]string{"HOME": "/home/dev", "KUBECONFIG": ""}},
		call:    "kubefwd()",
		svc:     []string{"--context", "kind-dev", "--idle"},
		follow:  []string{},
		kubecfg: "/home/dev/.kube/config",
	}, {
		name:   "no cluster in Tilt: no --context",
		host:   tiltHost{context: "-"},
		call:   "kubefwd()",
		svc:    []string{"--idle"},
		follow: []string{},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.host
			h.subcommand = "up"
			switch h.context {
			case "":
				h.context = "kind-dev"
			case "-":
				h.context = ""
			}
			if h.env == nil {
				h.env = map[string]string{"HOME": "/home/dev"}
			}
			d, err := loadTiltfile(t, h, main, tc.call)
			if err != nil {
				t.Fatal(err)
			}
			binary := tc.binary
			if binary == "" {
				binary = "kubefwd"
			}
			svc := d.resources["kubefwd"].serveCmd
			if len(svc) < 4 || svc[1] != binary || !slices.Equal(svc[4:], tc.svc) {
				t.Errorf("kubefwd serve_cmd %q, want binary %q and flags %q", svc, binary, tc.svc)
			}
			if want := tc.kubecfg; want != "" {
				if got := d.resources["kubefwd"].serveEnv["KUBECONFIG"]; got != want {
					t.Errorf("KUBECONFIG %q, want %q", got, want)
				}
			}
			follower, following := d.resources["kubefwd:namespaces"]
			if following != (tc.follow != nil) {
				t.Fatalf("follower declared: %v, want %v", following, tc.follow != nil)
			}
			if following {
				want := append([]string{binary, "namespaces", "follow-tilt", "--instance", "tilt"}, tc.follow...)
				if !slices.Equal(follower.serveCmd, want) {
					t.Errorf("follower %q, want %q", follower.serveCmd, want)
				}
			}
			if got := d.cmds["kubefwd-refresh"].args; len(got) == 0 || got[0] != binary {
				t.Errorf("refresh command %q, want %q first", got, binary)
			}
		})
	}
}

func TestTiltfileRefusesBadArguments(t *testing.T) {
	for _, tc := range []struct {
		call, want string
	}{
		{"kubefwd(namespaces='demo')", "kubefwd(): namespaces must be a list of strings, not string."},
		{"kubefwd(namespaces=[])", "kubefwd(): namespaces is empty; pass None to follow Tilt, or the namespaces to forward."},
		{"kubefwd(namespaces=['demo', ''])", "kubefwd(): namespaces holds an empty namespace name."},
		{"kubefwd(namespaces=['Demo'])", `kubefwd(): "Demo" is not a valid namespace name`},
		{"kubefwd(namespaces=['kind-dev/demo'])", `kubefwd(): "kind-dev/demo" names a context; with a fixed namespaces list`},
		{"kubefwd(extra_namespaces=[1])", "kubefwd(): extra_namespaces must be a list of strings; it holds 1, a int."},
		{"kubefwd(extra_namespaces='db')", "kubefwd(): extra_namespaces must be a list of strings, not string."},
		{"kubefwd(extra_namespaces=['/db'])", `kubefwd(): "/db": the context before "/" is empty.`},
		{"kubefwd(short_names_from='')", "kubefwd(): short_names_from is empty."},
		{"kubefwd(short_names_from=['shop'])", "kubefwd(): short_names_from must be a string, not list."},
		{"kubefwd(short_names_from='shop_1')", `kubefwd(): "shop_1" is not a valid namespace name`},
		{"kubefwd(args='-d local')", "kubefwd(): args must be a list of strings, not string."},
		{"kubefwd(args=['-v', True])", "kubefwd(): args must be a list of strings; it holds True, a bool."},
		{"kubefwd(binary=None)", "kubefwd(): binary must be a string, not NoneType."},
		{"kubefwd(binary='')", "kubefwd(): binary is empty."},
		{"kubefwd(instance='my tilt')", `kubefwd(): instance "my tilt" is not a valid name`},
		{"kubefwd(prompt='ask')", `kubefwd(): prompt "ask" is not one of auto, pkexec, osascript, sudo, none.`},
		{"kubefwd(tilt_args=['--port=10351'])", `unexpected keyword argument "tilt_args"`},
	} {
		t.Run(tc.call, func(t *testing.T) {
			h := tiltHost{subcommand: "up", context: "kind-dev", env: map[string]string{"HOME": "/home/dev"}}
			d, err := loadTiltfile(t, h, t.TempDir(), tc.call)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if len(d.order)+len(d.buttons)+len(d.cmds) > 0 {
				t.Errorf("declared %v, %v, %v before failing", d.order, d.buttons, d.cmds)
			}
		})
	}
}

func TestTiltfileOnWindows(t *testing.T) {
	h := tiltHost{subcommand: "up", osName: "nt", context: "kind-dev", env: map[string]string{"USERPROFILE": `C:\Users\dev`}}
	_, err := loadTiltfile(t, h, t.TempDir(), "kubefwd()")
	want := "kubefwd(): the Tilt extension does not run on Windows (its start script needs a POSIX shell); run `kubefwd svc` in an administrator terminal instead."
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	// tilt down must still bring the rest of the project down.
	h.subcommand = "down"
	if _, err := loadTiltfile(t, h, t.TempDir(), "kubefwd(prompt='ask')"); err != nil {
		t.Fatalf("tilt down on Windows: %v", err)
	}
}

// writeStandIn writes a kubefwd that records what the start script asks of it
// into dir: svc writes its argv (one per line) to svc.argv, its environment
// to svc.env and its pid to svc.pid, then runs until TERM, when it writes
// two log lines and "cleaned" to calls; stop appends its arguments to calls
// and sends svc TERM; helper status fails (no helper).
func writeStandIn(t *testing.T, path, dir string) {
	t.Helper()
	script := `#!/bin/sh
dir='` + dir + `'
case $1 in
svc)
    # The environment first: tests wait for svc.argv, then read both.
    env >"$dir/svc.env.tmp" && mv "$dir/svc.env.tmp" "$dir/svc.env"
    printf '%s\n' "$0" "$@" >"$dir/svc.argv.tmp" && mv "$dir/svc.argv.tmp" "$dir/svc.argv"
    echo $$ >"$dir/svc.pid.tmp" && mv "$dir/svc.pid.tmp" "$dir/svc.pid"
    echo "forwarding"
    cleanup() {
        # As kubefwd does: logs while it removes its hosts entries.
        echo "stopping" >&2 || echo "write failed" >>"$dir/calls"
        sleep 0.2
        echo "hosts entries removed" >&2 || echo "write failed" >>"$dir/calls"
        echo cleaned >>"$dir/calls"
        exit 0
    }
    trap cleanup TERM
    while :; do sleep 1 & wait $!; done
    ;;
stop)
    echo "$*" >>"$dir/calls"
    kill -TERM "$(cat "$dir/svc.pid")"
    ;;
*)
    echo "$*" >>"$dir/calls"
    exit 1
    ;;
esac
`
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func pollUntil(t *testing.T, what string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fileLines(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

func startScriptPath(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("kubefwd", "start-kubefwd.sh"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStartScriptPromptNone(t *testing.T) {
	dir := t.TempDir()
	writeStandIn(t, filepath.Join(dir, "bin", "kubefwd"), dir)
	out := &bytes.Buffer{}
	// A relative binary: pkexec and osascript would start it elsewhere.
	cmd := exec.Command(startScriptPath(t), "./bin/kubefwd", "tilt-x", "none", "--context", "kind-dev", "--idle")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KUBECONFIG=/home/dev/.kube/config")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })

	argv := filepath.Join(dir, "svc.argv")
	pollUntil(t, "kubefwd svc started", 10*time.Second, func() bool { return len(fileLines(argv)) > 0 })
	want := []string{filepath.Join(dir, "bin", "kubefwd"), "svc", "--instance", "tilt-x", "--context", "kind-dev", "--idle"}
	if got := fileLines(argv); !slices.Equal(got, want) {
		t.Errorf("kubefwd ran as\n%q, want\n%q", got, want)
	}
	if env, _ := os.ReadFile(filepath.Join(dir, "svc.env")); !strings.Contains(string(env), "KUBECONFIG=/home/dev/.kube/config\n") {
		t.Errorf("KUBECONFIG not passed on:\n%s", env)
	}

	// Tilt stops the resource: TERM to the script.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("start script: %v\n%s", err, out)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the start script did not stop\n%s", out)
	}
	if calls := fileLines(filepath.Join(dir, "calls")); !slices.Equal(calls, []string{"stop --instance tilt-x", "cleaned"}) {
		t.Errorf("calls %q, want kubefwd stop, then its clean-up", calls)
	}
	if !strings.Contains(out.String(), "forwarding\n") || !strings.Contains(out.String(), "hosts entries removed\n") {
		t.Errorf("kubefwd's output did not reach Tilt:\n%s", out)
	}
}

// Tilt killed with SIGKILL signals nothing: the script sees that its parent
// is gone, stops kubefwd through `kubefwd stop`, and kubefwd can still log
// while it cleans up, although nobody reads Tilt's pipe any more.
func TestStartScriptStopsWhenTiltIsKilled(t *testing.T) {
	dir := t.TempDir()
	kubefwd := filepath.Join(dir, "kubefwd")
	writeStandIn(t, kubefwd, dir)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// sh plays Tilt: it starts the script and waits.
	pidFile := filepath.Join(dir, "script.pid")
	tilt := exec.Command("sh", "-c", `"$0" "$@" & echo $! >`+pidFile+`; wait`, startScriptPath(t), kubefwd, "tilt-k", "none", "--idle")
	tilt.Stdout, tilt.Stderr = w, w
	if err := tilt.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var script int
	pollUntil(t, "the script started", 10*time.Second, func() bool {
		lines := fileLines(pidFile)
		if len(lines) == 1 {
			script, _ = strconv.Atoi(lines[0])
		}
		return script > 0 && len(fileLines(filepath.Join(dir, "svc.pid"))) == 1
	})
	t.Cleanup(func() { syscall.Kill(script, syscall.SIGKILL) })
	svc, _ := strconv.Atoi(fileLines(filepath.Join(dir, "svc.pid"))[0])
	t.Cleanup(func() { syscall.Kill(svc, syscall.SIGKILL) })

	if err := tilt.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	tilt.Wait()
	r.Close() // nobody reads Tilt's pipe now

	calls := filepath.Join(dir, "calls")
	pollUntil(t, "kubefwd stop --instance tilt-k", 5*time.Second, func() bool { return slices.Contains(fileLines(calls), "stop --instance tilt-k") })
	pollUntil(t, "kubefwd cleaned up and exited", 5*time.Second, func() bool { return !running(svc) && !running(script) })
	if got := fileLines(calls); !slices.Equal(got, []string{"stop --instance tilt-k", "cleaned"}) {
		t.Errorf("calls %q, want kubefwd stop, then its clean-up with every log line written", got)
	}
}

// running is whether pid runs (a zombie waiting for a reaper does not).
func running(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// On Linux without a display, prompt auto means sudo; Tilt gives no
// terminal, so sudo -n (never waiting for a password), and when sudo says
// it needs one, a sentence on how to need none. Played by nobody, with a
// stand-in sudo that answers as the real one does without a sudoers rule.
func TestStartScriptSudoWithoutPassword(t *testing.T) {
	hostiletest.NeedRoot(t)
	if _, err := exec.LookPath("runuser"); err != nil {
		t.Fatal("runuser is needed to run the script as nobody")
	}
	dir := hostiletest.Dir(t, 0o777)
	kubefwd := filepath.Join(dir, "kubefwd")
	writeStandIn(t, kubefwd, dir)
	sudoDir := filepath.Join(dir, "sudo-bin")
	if err := os.Mkdir(sudoDir, 0o755); err != nil {
		t.Fatal(err)
	}
	sudo := `#!/bin/sh
printf '%s\n' "$@" >'` + dir + `/sudo.argv'
if [ "$1" = -n ]; then
    echo "sudo: a password is required" >&2
else
    echo "sudo: no password was provided" >&2
fi
exit 1
`
	if err := os.WriteFile(filepath.Join(sudoDir, "sudo"), []byte(sudo), 0o755); err != nil {
		t.Fatal(err)
	}
	hint := "kubefwd: sudo needs a password and Tilt has no terminal to type it in: run 'sudo kubefwd helper install' once, or set SUDO_ASKPASS to a graphical askpass program (such as ssh-askpass) before 'tilt up'."
	for _, tc := range []struct {
		name, askpass, flag string
		hint                bool
	}{
		{"no askpass: sudo -n", "", "-n", true},
		{"askpass: sudo -A", "/usr/bin/ssh-askpass", "-A", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := []string{"PATH=" + sudoDir + ":/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/nonexistent", "KUBECONFIG=/home/dev/.kube/config"}
			if tc.askpass != "" {
				env = append(env, "SUDO_ASKPASS="+tc.askpass)
			}
			args := append([]string{"-u", "nobody", "--", "/usr/bin/env", "-i"}, env...)
			args = append(args, startScriptPath(t), kubefwd, "tilt-s", "auto", "--context", "kind-dev", "--idle")
			cmd := exec.Command("runuser", args...)
			cmd.Dir = dir
			out := &bytes.Buffer{}
			cmd.Stdout, cmd.Stderr = out, out
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("the start script waited (for a password?)\n%s", out)
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("exit: %v, want sudo's status 1\n%s", err, out)
			}
			want := []string{tc.flag, "/usr/bin/env", "SUDO_UID=65534", "SUDO_GID=65534", "SUDO_USER=nobody",
				"KUBECONFIG=/home/dev/.kube/config", kubefwd, "svc", "--instance", "tilt-s", "--context", "kind-dev", "--idle"}
			if got := fileLines(filepath.Join(dir, "sudo.argv")); !slices.Equal(got, want) {
				t.Errorf("sudo ran as\n%q, want\n%q", got, want)
			}
			if got := strings.Contains(out.String(), hint); got != tc.hint {
				t.Errorf("hint printed: %v, want %v; output:\n%s", got, tc.hint, out)
			}
			if !strings.Contains(out.String(), "sudo: ") {
				t.Errorf("sudo's own message is missing:\n%s", out)
			}
		})
	}
}
