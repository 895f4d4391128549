package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/asuser"
	"github.com/kubefwd/kubefwd/internal/catalog"
	"github.com/kubefwd/kubefwd/internal/cmdio"
	"github.com/kubefwd/kubefwd/internal/control"
	"github.com/kubefwd/kubefwd/internal/engine"
	"github.com/kubefwd/kubefwd/internal/forward"
	"github.com/kubefwd/kubefwd/internal/hosts"
	"github.com/kubefwd/kubefwd/internal/kube"
	"github.com/kubefwd/kubefwd/internal/loopback"
	"github.com/kubefwd/kubefwd/internal/namespaces"
	"github.com/kubefwd/kubefwd/internal/relaypod"
	"github.com/kubefwd/kubefwd/internal/tui"
)

// svcOptions are `kubefwd svc`'s flags and what complete derives from them.
type svcOptions struct {
	streams Streams
	// interrupts is where a second signal's cleanup is set (nil: none).
	interrupts *interrupts

	kubeFlags      kube.Flags
	kubeconfig     string
	contexts       []string
	namespaces     []string
	allNamespaces  bool
	selector       string
	fieldSelector  string
	domain         string
	mappings       []string
	reserves       []string
	fwdConf        string
	hostsPath      string
	stateFile      string
	verbose        bool
	pinFirst       bool
	endpointWait   time.Duration
	nsFile         string
	idle           bool
	instance       string
	helperMode     string
	helperSocket   string
	hostsPathSet   bool
	relay          bool
	relayNamespace string
	relayImage     string
	relayImageSet  bool
	profileDir     string
	tui            bool

	// Set by Complete.
	log      *slog.Logger
	mapping  catalog.Mapping
	loopback loopback.Config
	targets  []kube.Target
	// user is whose rights the invoking user's files are used with (under
	// sudo); nil: this process's own.
	user *asuser.User
	// helperErr says why a reachable helper was not used (it refused this
	// user), for the privilege errors that may follow.
	helperErr error
	// viewLog carries the log to the live view's pane (--tui).
	viewLog *cmdio.LineChan
}

// helperSession is what svc uses of a session with the privileged helper.
type helperSession interface {
	engine.HostsWriter
	Listen(netip.AddrPort) (net.Listener, error)
	ListenPacket(netip.AddrPort) (net.PacketConn, error)
	Keep(context.Context)
	Close() error
	HostsPath() string
}

func newSvcCommand(streams Streams, in *interrupts) *cobra.Command {
	o := &svcOptions{streams: streams, interrupts: in}
	cmd := &cobra.Command{
		Use:     "svc",
		Aliases: []string{"services", "svcs"},
		Short:   "Forward every Service of the chosen namespaces, each on its own loopback address, by name",
		Example: `  kubefwd svc -n demo
  kubefwd svc -n demo,demo2 -l app=web
  kubefwd svc -A --hosts-path /tmp/hosts
  kubefwd svc -x dev -x prod -n payments
  kubefwd svc -n demo -m 80:8080 -r web.demo:127.1.28.1`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.hostsPathSet = cmd.Flags().Changed("hosts-path")
			o.relayImageSet = cmd.Flags().Changed("relay-image")
			if err := o.complete(); err != nil {
				return err
			}
			return o.run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.kubeconfig, "kubeconfig", "c", "", "path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	f.StringSliceVarP(&o.contexts, "context", "x", nil, "kubeconfig context to forward from; repeat for several clusters (default: the current context)")
	f.StringSliceVarP(&o.namespaces, "namespace", "n", nil, "namespace to forward; repeat or comma-separate (default: the context's namespace)")
	f.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "forward the Services of every namespace")
	f.StringVarP(&o.selector, "selector", "l", "", "forward only Services matching this label selector (e.g. app=web,tier!=db)")
	f.StringVarP(&o.fieldSelector, "field-selector", "f", "", "forward only Services matching this field selector (e.g. metadata.name=web)")
	f.StringVarP(&o.domain, "domain", "d", "", "also write names under this domain (svc.DOMAIN, svc.ns.svc.cluster.DOMAIN)")
	f.StringSliceVarP(&o.mappings, "mapping", "m", nil, "listen on another local port: servicePort:localPort (e.g. 80:8080); repeatable")
	f.StringSliceVarP(&o.reserves, "reserve", "r", nil, "pin an address: name:ip, name being svc, svc.ns, svc.ns.context or a hostname; repeatable")
	f.StringVarP(&o.fwdConf, "fwd-conf", "z", "", "address reservations file (baseUnreservedIP, serviceConfigurations)")
	f.StringVar(&o.hostsPath, "hosts-path", hosts.DefaultPath(), "hosts file to write the names to")
	f.StringVar(&o.stateFile, "state-file", "", "where assigned addresses are remembered across runs (default: $XDG_STATE_HOME/kubefwd/addresses.json)")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "log debug details")
	f.BoolVar(&o.pinFirst, "pin-first", false, "send every connection to the first ready pod (upstream's behaviour) instead of round-robin")
	f.DurationVar(&o.endpointWait, "endpoint-wait", 30*time.Second, "how long a connection waits for a ready pod before it is closed")
	f.StringVar(&o.nsFile, "namespaces-file", "", "forward the namespaces listed in this file (NAME or CONTEXT/NAME per line), following its changes; a missing or empty file forwards nothing")
	f.BoolVar(&o.idle, "idle", false, "start with no namespace; add them later with kubefwd namespaces add")
	f.StringVar(&o.instance, "instance", "", "name this instance, for kubefwd status/refresh/namespaces --instance (default: a random id)")
	f.StringVar(&o.helperMode, "helper", "auto", "use the privileged helper (kubefwd helper install) for listeners and hosts entries: auto (when not root and one is running), always, never")
	f.StringVar(&o.helperSocket, "helper-socket", defaultHelperSocket(), "the privileged helper's Unix socket")
	f.BoolVar(&o.tui, "tui", false, "show the live view in this terminal (the log goes to a pane; q stops kubefwd); kubefwd ui attaches one to a running kubefwd")
	f.BoolVar(&o.relay, "relay", false, "carry what port-forward cannot (UDP ports, endpoints that are not pods, ExternalName Services) through a relay pod that kubefwd creates and deletes; without it nothing is created in the cluster")
	f.StringVar(&o.relayNamespace, "relay-namespace", "", "namespace of the relay pod (default: each context's first forwarded namespace)")
	f.StringVar(&o.relayImage, "relay-image", relaypod.Image(Version()), "the relay pod's image")
	f.StringVar(&o.profileDir, "profile-dir", "", "write CPU, allocation and heap profiles of this run into this directory")
	_ = f.MarkHidden("profile-dir") // for make bench; not a user feature
	// kubectl's client flags (--as, --request-timeout, --user, …) work as
	// they do in kubectl; the kubeconfig, context and namespace flags above
	// are upstream kubefwd's (short flags, repeatable -x and -n).
	o.kubeFlags.AddFlags(f)
	return cmd
}

// validate checks the flags on their own: each value, and which flags go
// together. It is pure (no file, terminal or cluster), so every mistake it
// can see is reported before anything else happens.
func (o *svcOptions) validate() error {
	if o.selector != "" {
		if _, err := labels.Parse(o.selector); err != nil {
			return UsageError{Err: fmt.Errorf("--selector %q: %v", o.selector, err)}
		}
	}
	if o.fieldSelector != "" {
		if _, err := fields.ParseSelector(o.fieldSelector); err != nil {
			return UsageError{Err: fmt.Errorf("--field-selector %q: %v", o.fieldSelector, err)}
		}
	}
	if _, err := parseMappings(o.mappings); err != nil {
		return UsageError{Err: err}
	}
	// -r against each other only: a -z file's come when it is read.
	if _, err := o.mergeReservations(loopback.Config{}); err != nil {
		return err
	}
	if o.nsFile != "" && (len(o.namespaces) > 0 || o.allNamespaces || o.idle) {
		return UsageError{Err: errors.New("--namespaces-file cannot be combined with --namespace, --all-namespaces or --idle: the file says which namespaces to forward")}
	}
	if o.idle && (len(o.namespaces) > 0 || o.allNamespaces) {
		return UsageError{Err: errors.New("--idle starts with no namespace; it cannot be combined with --namespace or --all-namespaces")}
	}
	switch o.helperMode {
	case "auto", "always", "never":
	default:
		return UsageError{Err: fmt.Errorf("--helper %q: want auto, always or never", o.helperMode)}
	}
	if (o.relayNamespace != "" || o.relayImageSet) && !o.relay {
		return UsageError{Err: errors.New("--relay-namespace and --relay-image configure the relay: add --relay")}
	}
	if o.relayNamespace != "" {
		if errs := validation.IsDNS1123Label(o.relayNamespace); len(errs) > 0 {
			return UsageError{Err: fmt.Errorf("--relay-namespace %q: %s", o.relayNamespace, errs[0])}
		}
	}
	if o.relay && strings.TrimSpace(o.relayImage) == "" {
		return UsageError{Err: errors.New("--relay-image is empty: name the image the relay pod runs")}
	}
	if o.instance != "" {
		if errs := validation.IsDNS1123Label(o.instance); len(errs) > 0 {
			return UsageError{Err: fmt.Errorf("--instance %q: %s", o.instance, errs[0])}
		}
	}
	return nil
}

// reservations parses the -r flags.
func (o *svcOptions) reservations() ([]loopback.Reservation, error) {
	var out []loopback.Reservation
	for _, r := range o.reserves {
		res, err := loopback.ParseReserve(r)
		if err != nil {
			return nil, UsageError{Err: err}
		}
		out = append(out, res)
	}
	return out, nil
}

// mergeReservations is the -z file's configuration with the -r flags over it.
func (o *svcOptions) mergeReservations(file loopback.Config) (loopback.Config, error) {
	cli, err := o.reservations()
	if err != nil {
		return loopback.Config{}, err
	}
	merged, err := loopback.Merge(file, cli)
	if err != nil {
		return loopback.Config{}, UsageError{Err: fmt.Errorf("--reserve: %w", err)}
	}
	return merged, nil
}

// complete validates the flags, reads the files they name and resolves
// contexts; it changes nothing on disk and contacts no cluster.
func (o *svcOptions) complete() error {
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	if o.tui {
		if err := cmdio.NeedTerminal("kubefwd svc --tui"); err != nil {
			return err
		}
		o.viewLog = cmdio.NewLineChan(1000)
	}
	switch {
	case o.streams.Log != nil && o.streams.Level != nil:
		o.streams.Level.Set(level)
		o.log = o.streams.Log
	case o.tui:
		o.log = slog.New(slog.NewTextHandler(o.viewLog, &slog.HandlerOptions{Level: level}))
	default:
		o.log = slog.New(slog.NewTextHandler(o.streams.Err, &slog.HandlerOptions{Level: level}))
	}
	if err := o.validate(); err != nil {
		return err
	}

	o.user = actingUser()
	o.mapping, _ = parseMappings(o.mappings) // valid: see validate
	cfg := loopback.Config{Base: loopback.DefaultBase}
	var err error
	if o.fwdConf != "" {
		if err = o.user.Do(func() (err error) { cfg, err = loopback.LoadFile(o.fwdConf); return err }); err != nil {
			return UsageError{Err: err}
		}
	}
	if o.loopback, err = o.mergeReservations(cfg); err != nil {
		return err
	}

	var fileRefs []namespaces.Ref
	if o.nsFile != "" {
		if err = o.user.Do(func() (err error) { fileRefs, err = namespaces.ReadFile(o.nsFile); return err }); err != nil {
			return UsageError{Err: fmt.Errorf("--namespaces-file: %w", err)}
		}
	}

	kubeconfig := o.kubeconfig
	if kubeconfig == "" {
		if kubeconfig = o.sudoUserKubeconfig(); kubeconfig != "" {
			o.log.Info("running under sudo: using the invoking user's kubeconfig", "kubeconfig", kubeconfig)
		}
	}
	if kubeconfig != "" {
		o.kubeFlags.Kubeconfig = kubeconfig
	}
	// The kubeconfig and the files it names are the user's: read with their
	// rights, and the credentials it points at are read now, as them.
	var adjust func(*rest.Config) error
	if o.user != nil {
		adjust = o.asUserConfig
	}
	err = o.user.Do(func() (err error) {
		o.targets, err = kube.Resolve(kube.Request{
			Flags: &o.kubeFlags, Contexts: o.contexts, Namespaces: o.namespaces, AllNamespaces: o.allNamespaces,
			QPS: 50, Burst: 100, Adjust: adjust,
		})
		return err
	})
	if err != nil {
		var ue kube.UsageError
		if errors.As(err, &ue) {
			return UsageError{Err: err}
		}
		return err
	}
	if o.nsFile != "" || o.idle {
		// The namespaces come from the file or, later, the control API.
		contexts := make([]string, len(o.targets))
		for i, t := range o.targets {
			contexts[i] = t.Context
		}
		perCtx, err := namespaces.PerContext(fileRefs, contexts)
		if err != nil {
			return UsageError{Err: fmt.Errorf("--namespaces-file %s: %w", o.nsFile, err)}
		}
		for i := range o.targets {
			o.targets[i].Namespaces = perCtx[o.targets[i].Context]
		}
	}

	if o.stateFile == "" {
		o.stateFile = defaultStateFile(o.user)
	}
	return nil
}

// run forwards until ctx ends (a signal, kubefwd stop, quitting --tui),
// in steps: profiles, the helper session or local checks, preflight, the
// engine, then the engine, control API, live view and namespaces file
// together (serve).
func (o *svcOptions) run(ctx context.Context) error {
	// A closed stdout or stderr (the terminal or Tilt gone, `| head`) must
	// not kill kubefwd before it removes its hosts entries: Go exits on
	// SIGPIPE for writes to fds 1 and 2 unless the signal is ignored.
	signal.Ignore(syscall.SIGPIPE)
	// kubefwd runs all day beside the IDE and mostly waits: a heap allowed
	// to grow to 1.5× what is live, not Go's default 2×, keeps what it
	// holds at rest small (at 3,000 Services about 16 MB of the 2× were
	// garbage of the first sync, kept); the extra collections cost little
	// to a program that allocates little once settled. GOGC still wins.
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(50)
	}
	stopProfiles, err := o.startProfiles()
	if err != nil {
		return err
	}
	defer stopProfiles()
	id := randomID()
	name := o.instance
	if name == "" {
		name = id
	}
	session, err := o.startHelperSession(ctx, name)
	if err != nil {
		return err
	}
	if session != nil {
		defer session.stop()
	} else if err := o.checkLocal(); err != nil {
		return err
	}
	targets, err := o.preflight(ctx)
	if err != nil {
		return err
	}
	opts, cleanup, err := o.engineOptions(targets, session, id)
	if err != nil {
		return err
	}
	eng, err := engine.New(opts)
	if err != nil {
		return err
	}
	// First signal: shut down in order (ctx ends). Second: remove our
	// hosts entries and exit at once.
	o.interrupts.setForceQuit(cleanup)
	defer o.interrupts.setForceQuit(nil)
	return o.serve(ctx, eng, name)
}

// startProfiles starts --profile-dir's profiles; stop writes them.
func (o *svcOptions) startProfiles() (stop func(), err error) {
	if o.profileDir == "" {
		return func() {}, nil
	}
	var write func() error
	err = o.user.Do(func() (err error) { write, err = startProfiles(o.profileDir); return err })
	if err != nil {
		return nil, UsageError{Err: fmt.Errorf("--profile-dir: %w", err)}
	}
	return func() {
		if err := write(); err != nil {
			o.log.Warn("cannot write profiles", "err", err)
		}
	}, nil
}

// keptSession is a helper session held open while kubefwd runs.
type keptSession struct {
	helperSession
	stop func() // ends Keep; call after the engine has finished
}

// startHelperSession connects to the privileged helper when svc should use
// one (nil: forward in-process). With it, this process needs no privilege:
// the helper binds the listeners and keeps the hosts entries.
func (o *svcOptions) startHelperSession(ctx context.Context, name string) (*keptSession, error) {
	session, err := o.connectHelper(ctx, name)
	if err != nil || session == nil {
		return nil, err
	}
	// Keep holds the session open (reconnecting if the helper restarts)
	// until the engine has finished, which removes its hosts entries
	// through it on the way out: so not ctx, which ends first.
	keepCtx, stopKeep := context.WithCancel(context.Background())
	keepDone := make(chan struct{})
	go func() { defer close(keepDone); session.Keep(keepCtx) }()
	o.log.Info("using the kubefwd helper: listeners and hosts entries come from it", "socket", o.helperSocket, "hosts", session.HostsPath())
	return &keptSession{helperSession: session, stop: func() { stopKeep(); <-keepDone }}, nil
}

// checkLocal fails early, before anything runs, when this process cannot
// write the hosts file itself; it warns when low ports will be refused.
func (o *svcOptions) checkLocal() error {
	if err := o.checkHostsPath(); err != nil {
		return err
	}
	if err := checkWritable(o.hostsPath, o.helperErr); err != nil {
		return err
	}
	if !lowPortsAllowed() {
		o.log.Warn("this user may not listen on ports below 1024: Services on such ports will not be forwarded; " +
			"run with sudo, use the helper (sudo kubefwd helper install), or map them with -m (e.g. -m 80:8080)")
	}
	return nil
}

// preflight checks every context and returns those that can be used; one
// failing does not stop the others, all failing is a ClusterError.
func (o *svcOptions) preflight(ctx context.Context) ([]kube.Target, error) {
	var targets []kube.Target
	var failures []error
	for _, t := range o.targets {
		check := t
		if o.nsFile != "" {
			// The file changes while kubefwd runs, and a namespace it names
			// that cannot be watched is reported, not fatal: check only that
			// the cluster answers.
			check.Namespaces = nil
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := kube.Preflight(pctx, check)
		cancel()
		if err != nil {
			o.log.Error("not forwarding this context", "context", t.Context, "err", err)
			failures = append(failures, err)
			continue
		}
		targets = append(targets, t)
	}
	if len(targets) == 0 {
		return nil, ClusterError{errors.Join(failures...)}
	}
	return targets, nil
}

// engineOptions are the engine's options for targets, writing the hosts
// file through session or, without one, itself (id names its block; blocks
// of instances that died go first). cleanup removes the hosts entries and
// aliases at once, for a second signal.
func (o *svcOptions) engineOptions(targets []kube.Target, session *keptSession, id string) (opts engine.Options, cleanup func(), err error) {
	opts = engine.Options{
		Targets: targets, LabelSelector: o.selector, FieldSelector: o.fieldSelector,
		Mapping: o.mapping, Domain: o.domain, Loopback: o.loopback,
		State:    loopback.Store{Path: o.stateFile, User: o.user},
		PinFirst: o.pinFirst,
		Proxy:    forward.ProxyOptions{WaitForEndpoint: o.endpointWait},
		Log:      o.log,
		Version:  Version(),
		Relay:    engine.RelayOptions{Enabled: o.relay, Namespace: o.relayNamespace, Image: o.relayImage, Host: hostname()},
	}
	if session != nil {
		// Ending the session removes what the helper holds for us.
		opts.Hosts, opts.Aliases, opts.Listen = session.helperSession, helperAliases(session.helperSession), session.Listen
		opts.ListenPacket = session.ListenPacket
		return opts, func() { session.Close() }, nil
	}
	hostsFile := &hosts.File{Path: o.hostsPath, Block: hosts.Block{ID: id, Owner: hosts.Self().String()}, AfterWrite: func() {
		if err := hosts.FlushDNSCache(); err != nil {
			o.log.Warn("cannot flush the DNS cache", "err", err)
		}
	}, OnUserLines: func(lines []string) {
		o.log.Warn("lines someone added inside kubefwd's hosts block were kept and moved out of it", "hosts", o.hostsPath, "lines", lines)
	}}
	hostsWriter := o.hostsWriter(hostsFile)
	aliases := loopback.NewAliases()
	opts.Hosts, opts.Aliases = hostsWriter, aliases
	// Blocks of instances that died without cleaning up (kill -9, a crash,
	// a reboot) go first.
	gone, err := hostsWriter.RemoveStale()
	if err != nil {
		return engine.Options{}, nil, err
	}
	for _, owner := range gone {
		o.log.Info("removed hosts entries left by a kubefwd that is no longer running", "pid", owner.PID, "hosts", o.hostsPath)
	}
	return opts, func() {
		_ = hostsWriter.Remove()
		_ = aliases.RemoveAll()
	}, nil
}

// serve runs the engine, the control API (kubefwd status, events,
// refresh, namespaces, stop), the live view (--tui) and the namespaces
// file's follower until ctx ends or one of them ends them all: the engine
// stopping, kubefwd stop, quitting the view. Only the engine's error is
// kubefwd's: the others' are logged, and forwarding goes on without them.
func (o *svcOptions) serve(ctx context.Context, eng *engine.Engine, name string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	uid, _ := invokingUser()
	g.Go(func() error {
		defer cancel()
		return eng.Run(ctx)
	})
	g.Go(func() error {
		api := &control.Server{Engine: eng, Log: o.log, UID: uid, User: o.user, Stop: cancel}
		if err := api.Serve(ctx, control.Dir(uid), name); err != nil {
			// Said at once: forwarding goes on, but nothing can steer it.
			o.log.Error("control API unavailable: kubefwd status, refresh and namespaces cannot reach this instance", "err", err)
		}
		return nil
	})
	if o.tui {
		g.Go(func() error {
			defer cancel() // quitting the view stops kubefwd
			o.runView(ctx, uid, name)
			return nil
		})
	}
	if o.nsFile != "" {
		g.Go(func() error {
			if err := o.followFile(ctx, eng); err != nil {
				o.log.Warn("namespaces file", "err", err)
			}
			return nil
		})
	}
	return g.Wait()
}

// runView shows the live view attached to this instance's own control
// socket (the same API every client uses), with the log in its pane, until
// the user quits or ctx ends; the log then comes back to the terminal, in
// time for what shutting down says.
func (o *svcOptions) runView(ctx context.Context, uid int, name string) {
	if o.streams.LogSink != nil {
		restore := o.streams.LogSink.Redirect(o.viewLog)
		defer restore()
	}
	err := tui.Run(ctx, tui.Options{
		Connect:  func() (tui.Backend, error) { return control.Connect(control.Dir(uid), name) },
		Instance: name,
		OwnLog:   o.viewLog.C,
	})
	if err != nil {
		o.log.Error("the live view failed; kubefwd stops", "err", err)
	}
}

// followFile applies the namespaces file whenever it changes.
func (o *svcOptions) followFile(ctx context.Context, eng *engine.Engine) error {
	return namespaces.Follow(ctx, o.nsFile, o.user, func(refs []namespaces.Ref) {
		if _, err := eng.ChangeNamespaces(api.NamespacesSet, refs); err != nil {
			o.log.Error("cannot apply the namespaces file; keeping the previous namespaces", "file", o.nsFile, "err", err)
		}
	}, func(err error) {
		o.log.Error("cannot read the namespaces file; keeping the previous namespaces", "err", err)
	})
}

// parseMappings parses -m servicePort:localPort entries. Two Service ports
// mapped onto one local port are refused: a Service with both would need
// one listener for two ports.
func parseMappings(in []string) (catalog.Mapping, error) {
	m := catalog.Mapping{}
	onto := map[int32]int32{} // local port → the Service port mapped onto it
	for _, s := range in {
		a, b, ok := strings.Cut(s, ":")
		from, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 16)
		to, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 16)
		if !ok || err1 != nil || err2 != nil || from == 0 || to == 0 {
			return nil, fmt.Errorf("--mapping %q: want servicePort:localPort with ports 1-65535, e.g. 80:8080", s)
		}
		if prev, dup := m[int32(from)]; dup && prev != int32(to) {
			return nil, fmt.Errorf("--mapping: port %d is mapped twice (to %d and %d)", from, prev, to)
		}
		if other, dup := onto[int32(to)]; dup && other != int32(from) {
			return nil, fmt.Errorf("--mapping: ports %d and %d are both mapped to local port %d; each needs its own", other, from, to)
		}
		m[int32(from)] = int32(to)
		onto[int32(to)] = int32(from)
	}
	return m, nil
}

// checkWritable fails early, before anything runs, if the hosts file cannot
// be written. helperErr, if set, is why the helper could not be used.
func checkWritable(path string, helperErr error) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			msg := fmt.Sprintf("cannot write the hosts file %s (permission denied): either run kubefwd as root (sudo -E kubefwd svc ...), "+
				"or grant root once with sudo kubefwd helper install and run kubefwd as yourself", path)
			if helperErr != nil {
				msg += fmt.Sprintf(" (a helper is running but: %v)", helperErr)
			}
			return PrivilegeError{errors.New(msg)}
		}
		return UsageError{Err: fmt.Errorf("--hosts-path %s: %w", path, err)}
	}
	return f.Close()
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// hostname names this machine on relay pods, so that a later kubefwd here
// can tell a relay whose owner died ("" if unknown: then only heartbeats
// tell).
func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return h
}
