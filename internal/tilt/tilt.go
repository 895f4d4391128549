// Package tilt follows the namespaces Tilt deploys to, as Tilt's API
// reports them in its KubernetesDiscovery objects (one per Kubernetes
// resource, listing the namespaces it watches).
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
	"time"
)

// discovery is the part of a KubernetesDiscovery we read.
type discovery struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name              string  `json:"name"`
		DeletionTimestamp *string `json:"deletionTimestamp"`
	} `json:"metadata"`
	Spec struct {
		Watches []struct {
			Namespace string `json:"namespace"`
		} `json:"watches"`
	} `json:"spec"`
	Items []discovery `json:"items"` // when it is a List
}

// Namespaces returns the sorted, distinct namespaces a `tilt get
// kubernetesdiscovery -o json` List (or single object) watches.
func Namespaces(list []byte) ([]string, error) {
	var d discovery
	if err := json.Unmarshal(list, &d); err != nil {
		return nil, fmt.Errorf("reading Tilt's KubernetesDiscovery list: %w", err)
	}
	var out []string
	add := func(d discovery) {
		if d.Metadata.DeletionTimestamp != nil {
			return
		}
		for _, w := range d.Spec.Watches {
			if w.Namespace != "" && !slices.Contains(out, w.Namespace) {
				out = append(out, w.Namespace)
			}
		}
	}
	add(d)
	for _, item := range d.Items {
		add(item)
	}
	slices.Sort(out)
	return out, nil
}

// Follower keeps a namespace set equal to what Tilt deploys to.
type Follower struct {
	Tilt string   // the tilt binary
	Args []string // extra arguments for `tilt get` (e.g. --port)
	// Apply receives each new set (sorted); an error is logged and the set
	// applied again at the next change or retry.
	Apply func(ctx context.Context, namespaces []string) error
	Log   *slog.Logger
}

// Run follows until ctx ends. `tilt get kubernetesdiscovery -o json
// --watch` says when something changed; the full list is then read again,
// which also catches deletions (a watch printing bare objects cannot show
// them). When Tilt is not up yet or restarts, it tries again.
func (f *Follower) Run(ctx context.Context) error {
	var applied []string
	done := false // applied holds what kubefwd was last set to
	// Waiting for Tilt or kubefwd (at its password prompt) repeats the
	// same error every retry: say it once.
	lastWarn := ""
	warn := func(msg string, args ...any) {
		if text := fmt.Sprint(msg, args); text != lastWarn {
			lastWarn = text
			f.Log.Warn(msg, args...)
		}
	}
	// sync makes kubefwd's set equal to Tilt's; false means try again
	// later (Tilt or kubefwd not reachable yet).
	sync := func() bool {
		out, err := f.tilt(ctx, "get", "kubernetesdiscovery", "-o", "json")
		if err != nil {
			if ctx.Err() == nil {
				warn("cannot list Tilt's KubernetesDiscovery objects; retrying", "err", err)
			}
			return false
		}
		ns, err := Namespaces(out)
		if err != nil {
			warn("unexpected output from tilt", "err", err)
			return false
		}
		if done && slices.Equal(ns, applied) {
			return true
		}
		if err := f.Apply(ctx, ns); err != nil {
			if ctx.Err() == nil {
				warn("cannot set kubefwd's namespaces; retrying", "namespaces", ns, "err", err)
			}
			return false
		}
		done, applied, lastWarn = true, ns, ""
		f.Log.Info("forwarding the namespaces Tilt deploys to", "namespaces", ns)
		return true
	}

	const retryEvery = 2 * time.Second
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
				// Let a burst of changes (a Tiltfile reload) settle first.
				select {
				case <-time.After(200 * time.Millisecond):
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
	return nil
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
