package tilt

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"slices"
	"sync"
	"time"
)

// Follower keeps a kubefwd instance's namespaces equal to what Tilt deploys
// to, across restarts of either.
type Follower struct {
	Tilt string   // the tilt binary (it finds its Tilt by TILT_PORT/TILT_HOST, which Tilt sets)
	Args []string // extra arguments for `tilt get`
	// ShortNamesFrom, when set, is always first: it gets the short names.
	ShortNamesFrom string
	Extra          []string // forwarded as well, whatever Tilt does
	// Apply sets kubefwd's namespaces (in order: the first gets the short
	// names). An error is logged and the set applied again later.
	Apply func(ctx context.Context, namespaces []string) error
	// Attach connects to kubefwd and returns when that instance goes away;
	// it calls up once connected. The set is applied again after every
	// connection, so a kubefwd restarted by Tilt (it starts with nothing)
	// gets it back at once.
	Attach func(ctx context.Context, up func()) error
	Log    *slog.Logger
}

const (
	retryEvery = 2 * time.Second
	// settle lets a burst of changes (a Tiltfile reload) arrive first.
	settle = 200 * time.Millisecond
)

// Run follows until ctx ends.
func (f *Follower) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()

	wants := make(chan []string, 1) // the latest set from Tilt (its sender replaces one not taken yet)
	attached := make(chan bool)     // kubefwd connected (true) or gone (false)
	wg.Go(func() { f.followTilt(ctx, wants) })
	wg.Go(func() { f.followKubefwd(ctx, attached) })

	var (
		want      []string
		haveWant  bool
		connected bool
		applied   []string
		current   bool // applied holds what this connection's kubefwd was set to
		everSet   bool // some kubefwd was set before
		lastWarn  string
	)
	apply := func() {
		if !connected || !haveWant || (current && slices.Equal(applied, want)) {
			return
		}
		if err := f.Apply(ctx, want); err != nil {
			if msg := fmt.Sprint(want, err); ctx.Err() == nil && msg != lastWarn {
				lastWarn = msg
				f.Log.Warn("cannot set kubefwd's namespaces; retrying", "namespaces", want, "err", err)
			}
			return
		}
		applied, current, everSet, lastWarn = slices.Clone(want), true, true, ""
		f.Log.Info("forwarding the namespaces Tilt deploys to", "namespaces", want)
	}
	retry := time.NewTicker(retryEvery)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ns := <-wants:
			want, haveWant = Order(ns, f.ShortNamesFrom, f.Extra), true
			apply()
		case up := <-attached:
			if up && everSet {
				f.Log.Info("kubefwd restarted; setting its namespaces again")
			}
			connected, current = up, false
			apply()
		case <-retry.C:
			apply()
		}
	}
}

// followKubefwd keeps a connection to kubefwd and reports each connection
// and its end.
func (f *Follower) followKubefwd(ctx context.Context, attached chan<- bool) {
	report := func(up bool) {
		select {
		case attached <- up:
		case <-ctx.Done():
		}
	}
	lastErr := ""
	for ctx.Err() == nil {
		wasUp := false
		err := f.Attach(ctx, func() {
			wasUp, lastErr = true, ""
			report(true)
		})
		if wasUp {
			report(false)
		}
		if ctx.Err() != nil {
			return
		}
		// kubefwd at its password prompt, or restarting: say so once.
		if err != nil && err.Error() != lastErr {
			lastErr = err.Error()
			f.Log.Warn("waiting for kubefwd", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// followTilt sends the namespaces Tilt deploys to whenever they may have
// changed. `tilt get kubernetesdiscovery -o json --watch` says when (a pod
// came or went, a resource was deployed); the full list is then read again,
// which also catches deletions (a watch printing bare objects cannot show
// them). When Tilt is not answering, it tries again.
func (f *Follower) followTilt(ctx context.Context, wants chan []string) {
	lastWarn := ""
	warn := func(msg string, err error) {
		if text := msg + err.Error(); text != lastWarn && ctx.Err() == nil {
			lastWarn = text
			f.Log.Warn(msg, "err", err)
		}
	}
	var sent []string
	haveSent := false
	// sync reads Tilt's objects; false means try again later.
	sync := func() bool {
		out, err := f.tilt(ctx, "get", "kubernetesdiscovery,kubernetesapply,uiresource", "-o", "json")
		if err != nil {
			warn("cannot list Tilt's objects; retrying", err)
			return false
		}
		ns, err := Namespaces(out)
		if err != nil {
			warn("unexpected output from tilt; retrying", err)
			return false
		}
		lastWarn = ""
		if haveSent && slices.Equal(ns, sent) {
			return true
		}
		sent, haveSent = ns, true
		select {
		case <-wants: // replace what was not taken yet
		default:
		}
		wants <- ns
		return true
	}

	pause := time.Second
	for ctx.Err() == nil {
		changes := make(chan struct{}, 1)
		watchDone := make(chan error, 1)
		wctx, stop := context.WithCancel(ctx)
		go func() { watchDone <- f.watch(wctx, changes) }()
		ok := sync()
		retry := time.NewTicker(retryEvery)
		watchEnded := false
	follow:
		for {
			select {
			case <-ctx.Done():
				break follow
			case <-changes:
				select {
				case <-time.After(settle):
				case <-ctx.Done():
				}
				ok = sync()
			case <-retry.C:
				if !ok {
					ok = sync()
				}
			case err := <-watchDone:
				watchEnded = true
				if ctx.Err() == nil {
					f.Log.Debug("tilt watch ended; starting it again", "err", err, "in", pause)
				}
				break follow
			}
		}
		stop()
		if !watchEnded {
			<-watchDone
		}
		retry.Stop()
		if ok {
			pause = time.Second
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
		pause = min(2*pause, 10*time.Second)
	}
}

// watch runs `tilt get kubernetesdiscovery -o json --watch` and signals
// every object it prints.
func (f *Follower) watch(ctx context.Context, changes chan<- struct{}) error {
	cmd := exec.CommandContext(ctx, f.Tilt, append([]string{"get", "kubernetesdiscovery", "-o", "json", "--watch"}, f.Args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return err
	}
	dec := json.NewDecoder(bufio.NewReader(out))
	for {
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			_ = cmd.Process.Kill()
			werr := cmd.Wait()
			if errors.Is(err, io.EOF) {
				err = werr
			}
			if msg := bytes.TrimSpace(stderr.Bytes()); len(msg) > 0 {
				err = fmt.Errorf("%w: %s", err, msg)
			}
			return err
		}
		select {
		case changes <- struct{}{}:
		default:
		}
	}
}

func (f *Follower) tilt(ctx context.Context, args ...string) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, f.Tilt, append(args, f.Args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := bytes.TrimSpace(stderr.Bytes()); len(msg) > 0 {
			return nil, fmt.Errorf("%s: %w: %s", f.Tilt, err, msg)
		}
		return nil, fmt.Errorf("%s: %w", f.Tilt, err)
	}
	return out, nil
}
