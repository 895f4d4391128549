// Package deptest holds the import-boundary tests. The core packages, which
// do the forwarding and touch the hosts file, never depend on the command
// line, the control API, the privileged helper or the Tilt integration:
// those are clients of the core, and a core that imported them could not be
// reasoned about (or reviewed for root) on its own. The control API's
// language (internal/api) imports only the standard library, and the
// control API itself no engine, so that its clients link none of it.
package deptest

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/kubefwd/kubefwd/"

// A boundary: these packages must not import those (with subpackages).
type boundary struct {
	pkgs, forbidden []string
}

var boundaries = []boundary{
	{
		pkgs: []string{"internal/engine", "internal/forward", "internal/catalog", "internal/hosts", "internal/loopback", "internal/names", "internal/api"},
		// "testing" would drag test flags into the binary.
		forbidden: []string{module + "internal/cli", module + "internal/control", module + "internal/helper", module + "internal/tilt", module + "internal/mcpserver", "testing"},
	},
	{
		// The control API and its clients link none of the engine: the
		// verbs that steer an instance (status, events, ui, mcp, env, …),
		// the live view and the MCP server.
		pkgs:      []string{"internal/control", "internal/mcpserver", "internal/envvars", "internal/ctl", "internal/tui", "internal/cmdio"},
		forbidden: []string{module + "internal/engine", module + "internal/forward", module + "internal/catalog", "k8s.io/client-go"},
	},
	{
		// The program links only the API groups it reads (internal/kubeapi):
		// client-go's clientset, typed clients and informers register all
		// of them, and cli-runtime brings kustomize, which imports package
		// plugin and so makes the binary dynamically linked with every
		// symbol exported. Each alone would triple the binary.
		pkgs: []string{"cmd/kubefwd"},
		forbidden: []string{"k8s.io/client-go/kubernetes", "k8s.io/client-go/informers", "k8s.io/client-go/listers",
			"k8s.io/cli-runtime", "sigs.k8s.io/kustomize", "plugin"},
	},
}

// goList returns the import graph of pkgs and their dependencies for goos.
func goList(t *testing.T, goos string, pkgs []string) map[string][]string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on PATH: %v", err)
	}
	cmd := exec.Command(goTool, append([]string{"list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}"}, pkgs...)...)
	cmd.Env = append(cmd.Environ(), "GOOS="+goos)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("GOOS=%s go list: %v\n%s", goos, err, stderr.String())
	}
	return parseGraph(out)
}

func TestImportBoundaries(t *testing.T) {
	// Every OS kubefwd builds for: files like alias_darwin.go import too.
	for _, goos := range []string{"linux", "darwin", "windows"} {
		for _, b := range boundaries {
			var pkgs []string
			for _, p := range b.pkgs {
				pkgs = append(pkgs, module+p)
			}
			graph := goList(t, goos, pkgs)
			for _, p := range pkgs {
				if path := forbiddenPath(graph, p, b.forbidden); path != nil {
					t.Errorf("GOOS=%s: %s must not import %s, but does: %s", goos, strings.TrimPrefix(p, module),
						strings.TrimPrefix(path[len(path)-1], module), shorten(path))
				}
			}
		}
	}
}

// The control API's language is the standard library's only.
func TestAPIImportsOnlyTheStandardLibrary(t *testing.T) {
	for _, goos := range []string{"linux", "darwin", "windows"} {
		graph := goList(t, goos, []string{module + "internal/api"})
		for p := range graph {
			if first, _, _ := strings.Cut(p, "/"); strings.Contains(first, ".") && p != module+"internal/api" {
				t.Errorf("GOOS=%s: internal/api depends on %s", goos, p)
			}
		}
	}
}

// The check itself finds a forbidden import however deep it is.
func TestForbiddenPath(t *testing.T) {
	graph := parseGraph([]byte(module + "internal/names strings " + module + "internal/x\n" +
		module + "internal/x fmt " + module + "internal/control/api\n" +
		module + "internal/control/api net/http\n" +
		module + "internal/hosts bytes\n" +
		module + "internal/clip\n"))
	core := boundaries[0].forbidden
	path := forbiddenPath(graph, module+"internal/names", core)
	if got := shorten(path); got != "internal/names → internal/x → internal/control/api" {
		t.Errorf("path = %q", got)
	}
	if path := forbiddenPath(graph, module+"internal/hosts", core); path != nil {
		t.Errorf("hosts: %v", path)
	}
	// A name that merely starts like a forbidden one is not one.
	if isForbidden(module+"internal/clip", core) {
		t.Error("internal/clip taken for internal/cli")
	}
}

// parseGraph reads go list lines: a package, then its direct imports.
func parseGraph(out []byte) map[string][]string {
	graph := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 {
			graph[fields[0]] = fields[1:]
		}
	}
	return graph
}

// forbiddenPath returns the shortest import chain from pkg to a forbidden
// package, or nil.
func forbiddenPath(graph map[string][]string, pkg string, forbidden []string) []string {
	prev := map[string]string{pkg: ""}
	queue := []string{pkg}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if isForbidden(p, forbidden) {
			var path []string
			for ; p != ""; p = prev[p] {
				path = append(path, p)
			}
			slices.Reverse(path)
			return path
		}
		for _, imp := range graph[p] {
			if _, seen := prev[imp]; !seen {
				prev[imp] = p
				queue = append(queue, imp)
			}
		}
	}
	return nil
}

func isForbidden(p string, forbidden []string) bool {
	for _, f := range forbidden {
		if p == f || strings.HasPrefix(p, f+"/") {
			return true
		}
	}
	return false
}

func shorten(path []string) string {
	var out []string
	for _, p := range path {
		out = append(out, strings.TrimPrefix(p, module))
	}
	return strings.Join(out, " → ")
}
