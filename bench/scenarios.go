package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubefwd/kubefwd/internal/forward"
	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/seed"
	"github.com/kubefwd/kubefwd/test/instmetrics"
	"github.com/kubefwd/kubefwd/test/procstat"
)

const mib = 1 << 20

// throughput covers scenarios 1–3: one connection, eight in parallel, and
// the forwarding process's CPU per GiB, with the ceiling of a client that
// reads the port-forward stream itself. kubectl port-forward follows one
// pod, so the compared 8-connection row uses api, which has one; web's two
// pods give kubefwd's spread over endpoints its own row.
func (b *bench) throughput(ctx context.Context) ([]Result, error) {
	size := int64(1 << 30)
	if b.quick {
		size = 64 * mib
	}
	kf, kfAddrs, err := b.kubefwdDemo(ctx, "throughput", "web", "api")
	if err != nil {
		return nil, err
	}
	defer kf.stop()
	kfAddr, kfAPI := kfAddrs[0], kfAddrs[1]
	kc, kcAddr, err := b.startKubectl("demo", "web", 80)
	if err != nil {
		return nil, err
	}
	defer kc.stop()
	kcAPIfwd, kcAPI, err := b.startKubectl("demo", "api", 8080)
	if err != nil {
		return nil, err
	}
	defer kcAPIfwd.stop()
	for _, addr := range []string{kcAddr, kcAPI} {
		if _, err := get(addr, "/"); err != nil {
			return nil, fmt.Errorf("kubectl port-forward: %w", err)
		}
	}
	ceiling, err := newCeiling(ctx, b.c)
	if err != nil {
		return nil, err
	}
	defer ceiling.close()

	one := newResult("1 throughput, 1 connection", fmt.Sprintf("MB/s (%d MiB)", size/mib), ratioAtLeast(1.0))
	ceil := newResult("1 throughput ceiling", "kubefwd / direct stream", medianAtLeast(0.9, ""))
	eight := newResult("2 throughput, 8 connections, one pod (api)", "MB/s in all", ratioAtLeast(1.0))
	spread := newResult("2 throughput, 8 connections, two pods (web)", "MB/s in all, kubefwd only", reported)
	cpu := newResult("3 CPU per GiB", "CPU seconds / GiB (1 connection)", ratioAtMost(1.0))
	var direct []float64
	for range b.pairs {
		for _, f := range []struct {
			fwd  *forwarder
			addr string
			into *[]float64
			cpu  *[]float64
		}{{kf, kfAddr, &one.Kubefwd, &cpu.Kubefwd}, {kc, kcAddr, &one.Kubectl, &cpu.Kubectl}} {
			before, _ := procstat.CPUSeconds(f.fwd.pid())
			took, err := download(f.addr, size)
			if err != nil {
				return nil, fmt.Errorf("%s download: %w", f.fwd.name, err)
			}
			after, _ := procstat.CPUSeconds(f.fwd.pid())
			*f.into = append(*f.into, float64(size)/took.Seconds()/1e6)
			*f.cpu = append(*f.cpu, (after-before)/(float64(size)/(1<<30)))
		}
		took, err := ceiling.download(ctx, size)
		if err != nil {
			return nil, fmt.Errorf("ceiling: %w", err)
		}
		direct = append(direct, float64(size)/took.Seconds()/1e6)
		for _, f := range []struct {
			addr string
			into *[]float64
		}{{kfAPI, &eight.Kubefwd}, {kcAPI, &eight.Kubectl}, {kfAddr, &spread.Kubefwd}} {
			took, err := parallel(f.addr, 8, size)
			if err != nil {
				return nil, fmt.Errorf("8 connections: %w", err)
			}
			*f.into = append(*f.into, float64(size)/took.Seconds()/1e6)
		}
	}
	one.pair()
	eight.pair()
	cpu.pair()
	for i := range one.Kubefwd {
		ceil.Kubefwd = append(ceil.Kubefwd, one.Kubefwd[i]/direct[i])
	}
	ceil.Note = fmt.Sprintf("the direct stream (the bench process itself opening the port-forward stream, no local listener) read %.0f MB/s (median)", median(direct))
	eight.Note = fmt.Sprintf("both tools on api's one pod; kubefwd's 8 connections carried %.2f× its single connection's rate (on web), kubectl's %.2f×",
		eight.KubefwdMedian()/one.KubefwdMedian(), eight.KubectlMedian()/one.KubectlMedian())
	spread.Note = fmt.Sprintf("kubefwd spreads connections over web's two pods, one tunnel each: %.2f× its one-pod figure (api) in the same run", spread.KubefwdMedian()/eight.KubefwdMedian())
	return []Result{one, ceil, eight, spread, cpu}, nil
}

// parallel downloads size bytes over n connections at once.
func parallel(addr string, n int, size int64) (time.Duration, error) {
	start := time.Now()
	var g errgroup.Group
	for range n {
		g.Go(func() error {
			_, err := download(addr, size/int64(n))
			return err
		})
	}
	err := g.Wait()
	return time.Since(start), err
}

// ceiling opens port-forward streams itself, with kubefwd's tunnel code
// but no listener and no second copy: the best a forwarder could do here.
type ceiling struct {
	tunnel *forward.Tunnel
}

func newCeiling(ctx context.Context, c *cluster.Cluster) (*ceiling, error) {
	pods, err := c.Pods(ctx, "demo", "web")
	if err != nil || len(pods) == 0 {
		return nil, fmt.Errorf("web pods: %v", err)
	}
	d, err := forward.NewDialer(c.RESTConfig, forward.DialerOptions{})
	if err != nil {
		return nil, err
	}
	t, err := d.Dial(ctx, forward.Pod{Namespace: "demo", Name: pods[0].Name})
	if err != nil {
		return nil, err
	}
	return &ceiling{tunnel: t}, nil
}

func (c *ceiling) download(ctx context.Context, size int64) (time.Duration, error) {
	start := time.Now()
	s, err := c.tunnel.Open(ctx, 8080)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	return readBytes(s, size, start)
}

func (c *ceiling) close() { c.tunnel.Close() }

// latency is scenario 4 (warm): sequential fresh connections, each one
// small request.
func (b *bench) latency(ctx context.Context) ([]Result, error) {
	perRun := 200
	if b.quick {
		perRun = 40
	}
	kf, kfAddr, err := b.kubefwdWeb(ctx, "latency")
	if err != nil {
		return nil, err
	}
	defer kf.stop()
	kc, kcAddr, err := b.startKubectl("demo", "web", 80)
	if err != nil {
		return nil, err
	}
	defer kc.stop()
	var all [2][]float64
	p50 := newResult("4 new-connection latency, warm", "p50 ms", ratioAtMost(1.0))
	p99 := newResult("4 new-connection latency, warm", "p99 ms", reported)
	for range b.pairs {
		for i, addr := range []string{kfAddr, kcAddr} {
			run, err := timeRequests(addr, perRun)
			if err != nil {
				return nil, err
			}
			all[i] = append(all[i], run...)
			if i == 0 {
				p50.Kubefwd = append(p50.Kubefwd, percentile(run, 50))
				p99.Kubefwd = append(p99.Kubefwd, percentile(run, 99))
			} else {
				p50.Kubectl = append(p50.Kubectl, percentile(run, 50))
				p99.Kubectl = append(p99.Kubectl, percentile(run, 99))
			}
		}
	}
	p50.Note = fmt.Sprintf("%d connections per tool; over all of them kubefwd p50 %.2f ms, p99 %.2f ms; kubectl p50 %.2f ms, p99 %.2f ms",
		len(all[0]), percentile(all[0], 50), percentile(all[0], 99), percentile(all[1], 50), percentile(all[1], 99))
	p50.pair()
	p99.pair()
	return []Result{p50, p99}, nil
}

// timeRequests makes n requests to addr one after the other, each on a new
// connection, and returns how long each took, in ms.
func timeRequests(addr string, n int) ([]float64, error) {
	var ms []float64
	for range n {
		start := time.Now()
		if _, err := get(addr, "/"); err != nil {
			return nil, fmt.Errorf("request: %w", err)
		}
		ms = append(ms, float64(time.Since(start).Microseconds())/1000)
	}
	return ms, nil
}

// againstBaseline is scenario 8 (with --baseline): today's kubefwd and the
// one built from an earlier commit, alternately in one run, each started on
// the demo namespace: warm new-connection latency to web (after a first
// connection, so a tunnel is open), then one connection's throughput and
// the CPU it took. Today's must stay within 5 % of the earlier one's.
func (b *bench) againstBaseline(ctx context.Context) ([]Result, error) {
	size, perRun := int64(1<<30), 200
	if b.quick {
		size, perRun = 64*mib, 40
	}
	scenario := fmt.Sprintf("8 against kubefwd %.7s", b.baselineRev)
	against := fmt.Sprintf("%.7s", b.baselineRev)
	p50 := newResult(scenario, "warm new-connection p50 ms", ratioAtMostOf(1.05, against))
	mbs := newResult(scenario, fmt.Sprintf("MB/s, 1 connection (%d MiB)", size/mib), ratioAtLeastOf(0.95, against))
	cpu := newResult(scenario, "CPU seconds / GiB (1 connection)", reported)
	for run := range b.pairs {
		// Which goes first alternates, so that neither always meets the
		// cluster as the other left it.
		order := []int{0, 1}
		if run%2 == 1 {
			order = []int{1, 0}
		}
		for _, i := range order {
			binary := []string{b.kubefwd, b.baseline}[i]
			kf, addrs, err := b.kubefwdDemoBinary(ctx, binary, fmt.Sprintf("baseline-%d-%d", run, i), "web")
			if err != nil {
				return nil, err
			}
			lat, took, cpuSecs, err := func() (float64, time.Duration, float64, error) {
				defer kf.stop()
				run, err := timeRequests(addrs[0], perRun)
				if err != nil {
					return 0, 0, 0, err
				}
				before, _ := procstat.CPUSeconds(kf.pid())
				took, err := download(addrs[0], size)
				after, _ := procstat.CPUSeconds(kf.pid())
				return percentile(run, 50), took, after - before, err
			}()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", []string{"today's kubefwd", "baseline"}[i], err)
			}
			v := []*[]float64{&p50.Kubefwd, &mbs.Kubefwd, &cpu.Kubefwd}
			if i == 1 {
				v = []*[]float64{&p50.Kubectl, &mbs.Kubectl, &cpu.Kubectl}
			}
			*v[0] = append(*v[0], lat)
			*v[1] = append(*v[1], float64(size)/took.Seconds()/1e6)
			*v[2] = append(*v[2], cpuSecs/(float64(size)/(1<<30)))
		}
	}
	for _, r := range []*Result{&p50, &mbs, &cpu} {
		r.Against = "kubefwd " + against
		r.pair()
	}
	p50.Note = fmt.Sprintf("the second column is kubefwd built from %.12s the same way (static, stripped), started afresh for each of the %d pairs (which runs first alternates); %d connections per run, the first of them opening the pod's tunnel", b.baselineRev, b.pairs, perRun)
	return []Result{p50, mbs, cpu}, nil
}

// failover is scenario 6: a request every 10 ms while the pod serving them
// is deleted, and while one pod's backend is dead behind an endpoint that
// stays ready (only retrying on another endpoint saves those requests).
func (b *bench) failover(ctx context.Context) ([]Result, error) {
	dur := 10 * time.Second
	if b.quick {
		dur = 4 * time.Second
	}
	const deleted, dead = "6 failover (pod deleted)", "6 failover (backend dead, endpoint ready)"
	fails := newResult(deleted, "failed requests", everyRun("kubefwd 0", func(v float64) bool { return v == 0 }))
	gap := newResult(deleted, "longest gap ms", reported)
	retries := newResult(deleted, "connections retried on another pod", reported)
	deadFails := newResult(dead, "failed requests, kubefwd only", everyRun("0", func(v float64) bool { return v == 0 }))
	deadRetries := newResult(dead, "connections retried on another pod", everyRun("> 0 (the retry path ran)", func(v float64) bool { return v > 0 }))
	kf, kfAddr, err := b.kubefwdWeb(ctx, "failover")
	if err != nil {
		return nil, err
	}
	defer kf.stop()
	for range b.pairs {
		for i := range 2 {
			if _, err := b.c.WaitServiceReady(ctx, "demo", "web", 2, 2*time.Minute); err != nil {
				return nil, err
			}
			addr := kfAddr
			var kc *forwarder
			if i == 1 {
				// kubectl follows one pod; a new one per run, as a user would restart it.
				if kc, addr, err = b.startKubectl("demo", "web", 80); err != nil {
					return nil, err
				}
			}
			before, err := b.retried(ctx, "failover")
			if err != nil {
				return nil, err
			}
			f, g, err := b.failoverRun(ctx, addr, dur, b.deleteLast)
			kc.stop()
			if err != nil {
				return nil, err
			}
			if i == 0 {
				after, err := b.retried(ctx, "failover")
				if err != nil {
					return nil, err
				}
				fails.Kubefwd, gap.Kubefwd = append(fails.Kubefwd, f), append(gap.Kubefwd, g)
				retries.Kubefwd = append(retries.Kubefwd, float64(after-before))
			} else {
				fails.Kubectl, gap.Kubectl = append(fails.Kubectl, f), append(gap.Kubectl, g)
			}
		}
		if _, err := b.c.WaitServiceReady(ctx, "demo", "web", 2, 2*time.Minute); err != nil {
			return nil, err
		}
		before, err := b.retried(ctx, "failover")
		if err != nil {
			return nil, err
		}
		var restore func() error
		f, _, err := b.failoverRun(ctx, kfAddr, dur, func(ctx context.Context, body string) error {
			var err error
			restore, err = b.killBackend(ctx, body)
			return err
		})
		if restore != nil {
			if rerr := restore(); rerr != nil && err == nil {
				err = rerr
			}
		}
		if err != nil {
			return nil, err
		}
		after, err := b.retried(ctx, "failover")
		if err != nil {
			return nil, err
		}
		deadFails.Kubefwd = append(deadFails.Kubefwd, f)
		deadRetries.Kubefwd = append(deadRetries.Kubefwd, float64(after-before))
	}
	fails.Note = fmt.Sprintf("%s of requests at 10 ms intervals per run, each on a new connection; the pod that answered last is deleted after a third of it. kubectl port-forward follows a single pod, so it loses everything after that", dur)
	deadRetries.Note = fmt.Sprintf("%s of requests as above; after a third, kwok is told to carry the last-answering pod's streams to a port nothing listens on, while its endpoint stays ready (a crashed process the kubelet has not noticed yet); retries are kubefwd's own count (status, ports[].retried) over the run", dur)
	return []Result{fails, gap, retries, deadFails, deadRetries}, nil
}

// deleteLast deletes the pod that answered body.
func (b *bench) deleteLast(ctx context.Context, body string) error {
	return b.c.DeletePod(ctx, "demo", answeredBy(body))
}

// answeredBy is the pod named in a backend's answer.
func answeredBy(body string) string {
	return strings.TrimPrefix(strings.Fields(body + " x")[0], "pod=demo/")
}

// killBackend points kwok's PortForward of the pod that answered body at a
// port nothing listens on, and returns how to put it back.
func (b *bench) killBackend(ctx context.Context, body string) (restore func() error, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	deadPort := int64(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	pfs := b.c.Dynamic.Resource(cluster.PortForwardGVR).Namespace("demo")
	pf, err := pfs.Get(ctx, answeredBy(body), metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	original, _, _ := unstructured.NestedSlice(pf.Object, "spec", "forwards")
	dead := make([]any, 0, len(original))
	for _, fw := range original {
		m := runtime.DeepCopyJSONValue(fw).(map[string]any)
		if err := unstructured.SetNestedField(m, deadPort, "target", "port"); err != nil {
			return nil, err
		}
		dead = append(dead, m)
	}
	if err := unstructured.SetNestedSlice(pf.Object, dead, "spec", "forwards"); err != nil {
		return nil, err
	}
	if _, err := pfs.Update(ctx, pf, metav1.UpdateOptions{}); err != nil {
		return nil, err
	}
	return func() error {
		pf, err := pfs.Get(context.WithoutCancel(ctx), pf.GetName(), metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := unstructured.SetNestedSlice(pf.Object, original, "spec", "forwards"); err != nil {
			return err
		}
		_, err = pfs.Update(context.WithoutCancel(ctx), pf, metav1.UpdateOptions{})
		return err
	}, nil
}

// failoverRun makes a request every 10 ms for dur; after a third of it,
// breakLast breaks the pod that answered last (given its answer).
func (b *bench) failoverRun(ctx context.Context, addr string, dur time.Duration, breakLast func(context.Context, string) error) (failures, longestGapMS float64, err error) {
	var last atomic.Value
	last.Store("")
	broken := make(chan error, 1)
	go func() {
		time.Sleep(dur / 3)
		body, _ := last.Load().(string)
		if pod := answeredBy(body); pod == "" || pod == "x" {
			broken <- fmt.Errorf("no answer before the failure")
			return
		}
		broken <- breakLast(ctx, body)
	}()
	start := time.Now()
	lastOK := start
	var longest time.Duration
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for time.Since(start) < dur {
		<-tick.C
		body, err := get(addr, "/")
		if err != nil {
			failures++
			continue
		}
		last.Store(body)
		if g := time.Since(lastOK); g > longest {
			longest = g
		}
		lastOK = time.Now()
	}
	if g := time.Since(lastOK); g > longest {
		longest = g
	}
	if err := <-broken; err != nil {
		return 0, 0, err
	}
	return failures, float64(longest.Milliseconds()), nil
}

// outage is scenario 7: the apiserver stops for a while under steady
// traffic; a web pod is deleted just before, so it is replaced while
// kubefwd cannot watch.
func (b *bench) outage(ctx context.Context) ([]Result, error) {
	down := 10 * time.Second
	runs := 3
	if b.quick {
		down, runs = 3*time.Second, 1
	}
	up := newResult("7 API outage", "listener accepted during the outage (1 = yes)", everyRun("kubefwd 1", func(v float64) bool { return v == 1 }))
	back := newResult("7 API outage", "s from API back to a new connection answered (-1: never)", everyRun("≤ 5 s", func(v float64) bool { return v >= 0 && v <= 5 }))
	kf, kfAddr, err := b.kubefwdWeb(ctx, "outage")
	if err != nil {
		return nil, err
	}
	defer kf.stop()
	for range runs {
		if _, err := b.c.WaitServiceReady(ctx, "demo", "web", 2, 2*time.Minute); err != nil {
			return nil, err
		}
		kc, kcAddr, err := b.startKubectl("demo", "web", 80)
		if err != nil {
			return nil, err
		}
		pods, err := b.c.Pods(ctx, "demo", "web")
		if err != nil || len(pods) == 0 {
			return nil, fmt.Errorf("web pods: %v", err)
		}
		if err := b.c.DeletePod(ctx, "demo", pods[0].Name); err != nil {
			return nil, err
		}
		if err := b.c.StopAPIServer(ctx); err != nil {
			return nil, err
		}
		time.Sleep(down / 2)
		accepts := func(addr string) float64 {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return 0
			}
			c.Close()
			return 1
		}
		up.Kubefwd = append(up.Kubefwd, accepts(kfAddr))
		up.Kubectl = append(up.Kubectl, accepts(kcAddr))
		time.Sleep(down - down/2)
		if err := b.c.StartAPIServer(ctx); err != nil {
			return nil, err
		}
		back0 := time.Now()
		measure := func(addr string) float64 {
			err := cluster.Poll(ctx, 60*time.Second, func(context.Context) (bool, error) {
				_, err := get(addr, "/")
				return err == nil, nil
			})
			if err != nil {
				return -1
			}
			return time.Since(back0).Seconds()
		}
		back.Kubefwd = append(back.Kubefwd, measure(kfAddr))
		kc.stop()
	}
	back.Note = fmt.Sprintf("the apiserver is stopped for %s, %d time(s), right after one of web's two pods is deleted; kubectl port-forward's listener is checked the same way (it exits when its stream breaks)", down, runs)
	return []Result{up, back}, nil
}

// startup is scenario 5 and the cold half of 4: kubefwd against NxM
// Services, from process start until every name is written and every
// Service answers.
//
// The memory goals are issue 18's: at the small scale (500 Services in a
// full run) ≤ 40 MB settled and ≤ 150 MB once every Service was connected
// (0.15 MB per open tunnel on top), at the large one (3,000) ≤ 60 MB
// settled. Quick runs use the same goals at their smaller scales.
func (b *bench) startup(ctx context.Context, spec seed.Spec, runs int, cold, large bool) ([]Result, error) {
	if err := seed.Apply(ctx, b.c, spec); err != nil {
		return nil, fmt.Errorf("seed %s: %w", spec, err)
	}
	total := spec.Namespaces * spec.ServicesPerNamespace
	var nsArgs []string
	for i := range spec.Namespaces {
		nsArgs = append(nsArgs, "-n", fmt.Sprintf("scale%d", i))
	}
	label := fmt.Sprintf("%d Services in %d namespaces", total, spec.Namespaces)
	scenario := "5 startup, " + label
	secs := newResult(scenario, "s until every Service answers", medianAtMost(3, "s"))
	named := newResult(scenario, "s until every name is written (listeners open)", reported)
	settledGoal, connectedGoal := medianAtMost(40, "MB"), medianAtMost(150, "MB")
	if large {
		settledGoal, connectedGoal = medianAtMost(60, "MB"), reported
	}
	settled := newResult(scenario, "RSS MB once settled", settledGoal)
	anon := newResult(scenario, "of which anonymous (not the executable's pages) MB", reported)
	heapLive := newResult(scenario, "of which Go heap in use MB", reported)
	heapKept := newResult(scenario, "of which Go heap free but kept MB", reported)
	stacks := newResult(scenario, "of which goroutine stacks MB", reported)
	connected := newResult(scenario, "RSS MB, every Service connected once", connectedGoal)
	perService := newResult(scenario, "MB per Service connected (RSS above settled / Services)", reported)
	tunnelsOpen := newResult(scenario, "tunnels open, every Service connected once", reported)
	peak := newResult(scenario, "peak RSS MB, every Service connected once", reported)
	// Per Service would be hundreds; a list and a watch of two resources
	// per namespace (and a little slack for the cluster's own clients) is
	// what O(namespaces) means. Every run is judged.
	maxReqs := 4*spec.Namespaces + 8
	reqs := newResult(scenario, "API requests (list/watch/get)", everyRun(fmt.Sprintf("O(namespaces): ≤ %d", maxReqs), func(v float64) bool { return v <= float64(maxReqs) }))
	coldRes := newResult("4 new-connection latency, cold, "+label, "p50 ms, 50 Services' first connection", reported)
	for run := range runs {
		before, err := apiserverRequests(ctx, b.c)
		if err != nil {
			return nil, err
		}
		tag := fmt.Sprintf("startup-%s-%d", strings.ReplaceAll(spec.String(), ":", "-"), run)
		if cold {
			tag += "-cold"
		}
		t0 := time.Now()
		kf, hostsPath, err := b.startKubefwd(tag, nsArgs...)
		if err != nil {
			return nil, err
		}
		names := make([]string, 0, total)
		for i := range spec.Namespaces {
			for j := range spec.ServicesPerNamespace {
				names = append(names, fmt.Sprintf("s%d.scale%d", j, i))
			}
		}
		addrs, err := waitAllNames(ctx, hostsPath, names, 120*time.Second)
		if err != nil {
			kf.stop()
			return nil, fmt.Errorf("%w\n%s", err, kf.log.String())
		}
		if !cold {
			named.Kubefwd = append(named.Kubefwd, time.Since(t0).Seconds())
		}
		if cold {
			// Settled: every listener open and every name written, no
			// connection made yet.
			time.Sleep(2 * time.Second)
			rss, _ := procstat.MemKiB(kf.pid(), "VmRSS")
			settled.Kubefwd = append(settled.Kubefwd, float64(rss)/1024)
			ra, _ := procstat.MemKiB(kf.pid(), "RssAnon")
			anon.Kubefwd = append(anon.Kubefwd, float64(ra)/1024)
			b.settled[spec.String()] = float64(rss) / 1024
			// The anonymous part broken down by the Go runtime's own
			// figures, from kubefwd's metrics at the same moment.
			if m, err := instmetrics.Gauges(ctx, instmetrics.Socket("bench-"+tag)); err == nil {
				heapLive.Kubefwd = append(heapLive.Kubefwd, m["go_memstats_heap_inuse_bytes"]/(1<<20))
				heapKept.Kubefwd = append(heapKept.Kubefwd, (m["go_memstats_heap_idle_bytes"]-m["go_memstats_heap_released_bytes"])/(1<<20))
				stacks.Kubefwd = append(stacks.Kubefwd, m["go_memstats_stack_inuse_bytes"]/(1<<20))
				stacks.Note = fmt.Sprintf("%.0f goroutines (one goroutine waits on every listener)", m["go_goroutines"])
				heapKept.Note = "freed by the garbage collector and not yet returned to the system (kubefwd lets the heap grow to 1.5× what is live)"
			}
			var lat []float64
			for _, addr := range addrs[:min(50, len(addrs))] {
				start := time.Now()
				if _, err := get(addr, "/"); err != nil {
					kf.stop()
					return nil, fmt.Errorf("cold request: %w", err)
				}
				lat = append(lat, float64(time.Since(start).Microseconds())/1000)
			}
			coldRes.Kubefwd = append(coldRes.Kubefwd, percentile(lat, 50))
			kf.stop()
			continue
		}
		if err := answerAll(ctx, addrs, 120*time.Second); err != nil {
			kf.stop()
			return nil, err
		}
		secs.Kubefwd = append(secs.Kubefwd, time.Since(t0).Seconds())
		rss, _ := procstat.MemKiB(kf.pid(), "VmRSS")
		connected.Kubefwd = append(connected.Kubefwd, float64(rss)/1024)
		if base, ok := b.settled[spec.String()]; ok {
			perService.Kubefwd = append(perService.Kubefwd, (float64(rss)/1024-base)/float64(total))
		}
		if tunnels, err := b.tunnelsOpen(ctx, tag); err == nil {
			tunnelsOpen.Kubefwd = append(tunnelsOpen.Kubefwd, float64(tunnels))
		}
		hwm, _ := procstat.MemKiB(kf.pid(), "VmHWM")
		peak.Kubefwd = append(peak.Kubefwd, float64(hwm)/1024)
		kf.stop()
		// Watches are counted when they end, so count after kubefwd stops.
		time.Sleep(500 * time.Millisecond)
		after, err := apiserverRequests(ctx, b.c)
		if err != nil {
			return nil, err
		}
		d := after.minus(before)
		reqs.Kubefwd = append(reqs.Kubefwd, float64(d.total()))
		if run == 0 {
			reqs.Note = fmt.Sprintf("counted by the apiserver (apiserver_request_total, all clients, so the cluster's own controllers add a few) from kubefwd's start to its stop, for the resources it reads (first run: %s). Tunnels (pods/portforward) are one per pod by nature and not API reads", d)
		}
	}
	if cold {
		return []Result{coldRes, settled, anon, heapLive, heapKept, stacks}, nil
	}
	peak.Note = "the most kubefwd held at once (VmHWM) up to that moment"
	secs.Note = "the rest after the names are written is each Service's first connection, 32 at a time: a WebSocket of its own through the apiserver to the node (TCP, TLS and an upgrade), no tunnel; on two cores the apiserver and kwok share the CPU with kubefwd"
	connected.Note = "right after every Service answered once (answerAll retries a Service until it answers, so a few get a second connection): a pod's first connection goes on a WebSocket of its own, closed with it; a second within 2 minutes opens a tunnel (SPDY, plain or over a WebSocket, with its own buffers and header compressor), which stays until 2 minutes idle"
	perService.Note = "settled RSS from the run above, without connections"
	return []Result{named, secs, connected, perService, tunnelsOpen, peak, reqs}, nil
}

// waitAllNames waits until the hosts file has every name and returns their
// addresses (port 8080), in names' order.
func waitAllNames(ctx context.Context, hostsPath string, names []string, timeout time.Duration) ([]string, error) {
	var addrs []string
	err := cluster.Poll(ctx, timeout, func(context.Context) (bool, error) {
		data, err := os.ReadFile(hostsPath)
		if err != nil {
			return false, nil
		}
		idx := hostsIndex(string(data))
		addrs = addrs[:0]
		for _, n := range names {
			ip, ok := idx[n]
			if !ok {
				return false, nil
			}
			addrs = append(addrs, net.JoinHostPort(ip, "8080"))
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("not every name reached the hosts file: %w", err)
	}
	return addrs, nil
}

func hostsIndex(content string) map[string]string {
	idx := map[string]string{}
	for _, line := range strings.Split(content, "\n") {
		f := strings.Fields(line)
		for _, n := range f[min(1, len(f)):] {
			idx[n] = f[0]
		}
	}
	return idx
}

// answerAll makes every address answer once, 32 at a time, retrying each
// until it does.
func answerAll(ctx context.Context, addrs []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var g errgroup.Group
	g.SetLimit(32)
	var mu sync.Mutex
	var lastErr error
	for _, addr := range addrs {
		g.Go(func() error {
			for {
				_, err := get(addr, "/")
				if err == nil {
					return nil
				}
				mu.Lock()
				lastErr = err
				mu.Unlock()
				select {
				case <-ctx.Done():
					return fmt.Errorf("%s never answered: %v", addr, lastErr)
				case <-time.After(20 * time.Millisecond):
				}
			}
		})
	}
	return g.Wait()
}
