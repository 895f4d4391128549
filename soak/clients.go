package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// target is one name the clients reach: a Service ("ns/svc") or a pod of a
// headless one ("ns/svc/pod"), by the name kubefwd wrote for it.
type target struct {
	key  string // ns/svc or ns/svc/pod
	name string // the hostname
	pod  string // for a pod's own name: the pod that must answer
	ns   string
}

// traffic is every client the soak runs, and what they saw.
type traffic struct {
	hostsPath string
	rng       *rand.Rand // for the clients' choices; guarded by mu

	index atomic.Pointer[map[string]string] // the hosts file, read every 250 ms

	mu       sync.Mutex
	targets  []target // what the short requests cycle through
	stable   []target // Services that exist throughout (no fault removes them)
	failures []Failure
	ok       map[string]int // completed operations by client
	reconn   int            // echo connections opened after the first, each client
}

func newTraffic(hostsPath string, seed uint64) *traffic {
	t := &traffic{hostsPath: hostsPath, rng: rand.New(rand.NewPCG(seed, 2)), ok: map[string]int{}}
	empty := map[string]string{}
	t.index.Store(&empty)
	return t
}

func (t *traffic) setTargets(all []target) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.targets = all
}

func (t *traffic) addTarget(tg target) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.targets = append(t.targets, tg)
}

func (t *traffic) removeTargets(match func(target) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.targets = slices.DeleteFunc(slices.Clone(t.targets), match)
}

func (t *traffic) current() []target {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.targets)
}

func (t *traffic) fail(client string, tg target, start time.Time, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failures = append(t.failures, Failure{Client: client, Target: tg.key, Start: start, End: time.Now(), Err: err.Error()})
}

func (t *traffic) done(client string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ok[client]++
}

// readHosts keeps the index of the hosts file fresh.
func (t *traffic) readHosts(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		t.reindex()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// reindex reads the hosts file now.
func (t *traffic) reindex() {
	if data, err := os.ReadFile(t.hostsPath); err == nil {
		idx := hostsIndex(data)
		t.index.Store(&idx)
	}
}

func (t *traffic) addr(name string) (string, error) {
	ip := (*t.index.Load())[name]
	if ip == "" {
		return "", fmt.Errorf("%s is not in the hosts file", name)
	}
	return net.JoinHostPort(ip, strconv.Itoa(port)), nil
}

// identify makes one request on a new connection and checks who answered:
// a pod of the target's namespace, the named pod for a pod's own name.
func (t *traffic) identify(ctx context.Context, tg target) error {
	addr, err := t.addr(tg.name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	if _, err := fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", tg.name); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	want := "pod=" + tg.ns + "/"
	if tg.pod != "" {
		want += tg.pod + " "
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), want) {
		return fmt.Errorf("answer %s %q, want one from %s", resp.Status, body, strings.TrimPrefix(want, "pod="))
	}
	return nil
}

// short makes requests on new connections to every target in turn, one
// every interval, until ctx ends.
func (t *traffic) short(ctx context.Context, offset int, interval time.Duration) {
	for i := offset; ctx.Err() == nil; i++ {
		all := t.current()
		if len(all) > 0 {
			tg := all[i%len(all)]
			start := time.Now()
			if err := t.identify(ctx, tg); err != nil {
				if ctx.Err() != nil {
					return
				}
				t.fail("short", tg, start, err)
			} else {
				t.done("short")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

func (t *traffic) pick(from []target) target {
	t.mu.Lock()
	defer t.mu.Unlock()
	return from[t.rng.IntN(len(from))]
}

// downloads reads size bytes from a stable Service at about rate bytes a
// second, one download after the other, until ctx ends.
func (t *traffic) downloads(ctx context.Context, size, rate int64) {
	for ctx.Err() == nil {
		tg := t.pick(t.stable)
		start := time.Now()
		if err := t.download(ctx, tg, size, rate); err != nil {
			if ctx.Err() != nil {
				return
			}
			t.fail("download", tg, start, err)
			time.Sleep(time.Second)
			continue
		}
		t.done("download")
	}
}

func (t *traffic) download(ctx context.Context, tg target, size, rate int64) error {
	addr, err := t.addr(tg.name)
	if err != nil {
		return err
	}
	conn, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if _, err := fmt.Fprintf(conn, "GET /bytes?n=%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", size, tg.name); err != nil {
		return err
	}
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	buf := make([]byte, 64<<10)
	start := time.Now()
	var got int64
	for {
		// A read may wait at most 15 s: a stall longer than that is a
		// broken download, not a slow one.
		conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		n, err := resp.Body.Read(buf)
		got += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("after %d of %d bytes: %w", got, size, err)
		}
		if ahead := time.Duration(float64(got)/float64(rate)*float64(time.Second)) - time.Since(start); ahead > 0 {
			time.Sleep(ahead)
		}
	}
	if got != size {
		return fmt.Errorf("read %d bytes, want %d", got, size)
	}
	return nil
}

// echo keeps one keep-alive connection to a stable Service and sends a
// request on it every interval, checking the body comes back. A
// connection the server closed between requests (a draining pod) is
// replaced, as any HTTP client does; a request that fails is a failure.
func (t *traffic) echo(ctx context.Context, interval time.Duration) {
	tg := t.pick(t.stable)
	var conns atomic.Int64
	tr := &http.Transport{
		MaxIdleConnsPerHost: 1,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			addr, err := t.addr(tg.name)
			if err != nil {
				return nil, err
			}
			conns.Add(1)
			return (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", addr)
		},
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	body := make([]byte, 2048)
	for ctx.Err() == nil {
		for i := range body {
			body[i] = byte('a' + (i+int(time.Now().UnixNano()))%26)
		}
		start := time.Now()
		err := func() error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+tg.name+":"+strconv.Itoa(port)+"/echo", bytes.NewReader(body))
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
				return fmt.Errorf("echo answered %s with %d bytes that differ from the %d sent", resp.Status, len(got), len(body))
			}
			return nil
		}()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			t.fail("echo", tg, start, err)
		} else {
			t.done("echo")
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
	t.mu.Lock()
	t.reconn += int(max(conns.Load()-1, 0))
	t.mu.Unlock()
}

// probe waits until every target answered once (each retried every
// 250 ms), and returns when the last did; ok is false if one did not by
// the deadline.
func (t *traffic) probe(ctx context.Context, targets []target, deadline time.Time) (time.Time, bool) {
	var wg sync.WaitGroup
	var last atomic.Int64
	var failed atomic.Bool
	sem := make(chan struct{}, 8)
	for _, tg := range targets {
		wg.Go(func() {
			for {
				sem <- struct{}{}
				t.reindex() // the names as the file has them now, not 250 ms ago
				err := t.identify(ctx, tg)
				<-sem
				if err == nil {
					for now := time.Now().UnixNano(); ; {
						old := last.Load()
						if now <= old || last.CompareAndSwap(old, now) {
							break
						}
					}
					return
				}
				if ctx.Err() != nil || time.Now().After(deadline) {
					failed.Store(true)
					return
				}
				time.Sleep(250 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	if failed.Load() {
		return time.Time{}, false
	}
	if last.Load() == 0 {
		return time.Now(), true
	}
	return time.Unix(0, last.Load()), true
}
