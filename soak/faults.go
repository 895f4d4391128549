package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/hosts"
	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
)

// soak is one run: the cluster, the kubefwd under test, the clients, and
// what the faults found.
type soak struct {
	c       *cluster.Cluster
	kf      *kubefwd
	traffic *traffic
	world   *world
	rng     *rand.Rand
	quick   bool
	log     func(format string, args ...any)

	mu        sync.Mutex
	faults    []Fault
	active    int       // faults running; guarded by mu
	lastQuiet time.Time // when the last fault recovered
	extras    []string  // Services the soak added, "ns/name"
	added     int
	// userHosts is what the hosts file must hold outside kubefwd's
	// blocks: what it started with and what the other program wrote.
	userHosts []byte
	// Findings on the hosts file, each a sentence with its time.
	staleAfterKill []int
	hostsFindings  []string
}

// cause runs one fault of kind and records it with its recovery.
func (s *soak) cause(ctx context.Context, kind string) Fault {
	f := Fault{Kind: kind, Start: time.Now()}
	s.mu.Lock()
	s.active++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.active--
		s.lastQuiet = time.Now()
		s.faults = append(s.faults, f)
		s.mu.Unlock()
	}()
	back, err := s.do(ctx, kind, &f)
	f.End = time.Now()
	if err != nil {
		f.Err = err.Error()
		s.log("soak: %s (%s) could not be caused or undone: %v", kind, f.Target, err)
		return f
	}
	if at, ok := back(ctx, f.End.Add(recoverWithin)); ok {
		f.Recovered = at
	}
	s.log("soak: %-40s %-18s %5.1f s, names answering %s", kind, f.Target, f.End.Sub(f.Start).Seconds(), recovered(f))
	return f
}

func recovered(f Fault) string {
	if f.Recovered.IsZero() {
		return "NOT again within " + recoverWithin.String()
	}
	return fmt.Sprintf("again %.2f s after its end", f.Recovered.Sub(f.End).Seconds())
}

// affected expands a fault's reach into the targets to probe after it.
func (s *soak) affected(f *Fault) []target {
	all := s.traffic.current()
	if f.All || len(f.Affects) == 0 {
		return all
	}
	return slices.DeleteFunc(all, func(t target) bool { return !f.affects(t.key) })
}

// probeAll is the usual recovery: every target f reaches answers again.
func (s *soak) probeAll(f *Fault) func(context.Context, time.Time) (time.Time, bool) {
	return func(ctx context.Context, deadline time.Time) (time.Time, bool) {
		return s.traffic.probe(ctx, s.affected(f), deadline)
	}
}

func (s *soak) pickDeployment(stableOnly bool) (ns, name string) {
	nss := namespaces
	if stableOnly {
		nss = slices.DeleteFunc(slices.Clone(namespaces), func(n string) bool { return n == volatileNamespace })
	}
	names := deploymentNames()
	return nss[s.rng.IntN(len(nss))], names[s.rng.IntN(len(names))]
}

func (s *soak) sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (s *soak) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)+1))
}

// do causes and undoes one fault, filling in its target and reach, and
// returns how to wait for its recovery.
func (s *soak) do(ctx context.Context, kind string, f *Fault) (func(context.Context, time.Time) (time.Time, bool), error) {
	c := s.c
	apps := c.Clientset.AppsV1()
	core := c.Clientset.CoreV1()
	switch kind {
	case kindRollout:
		ns, name := s.pickDeployment(false)
		f.Target = ns + "/" + name
		patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubefwd-soak/restarted":"%d"}}}}}`, time.Now().UnixNano())
		if _, err := apps.Deployments(ns).Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			return nil, err
		}
		return s.probeAll(f), s.waitRolledOut(ctx, ns, name)

	case kindDeletePod, kindDeleteLast:
		ns, name := s.pickDeployment(false)
		f.Target = ns + "/" + name
		pods, err := c.Pods(ctx, ns, name)
		if err != nil {
			return nil, err
		}
		if len(pods) == 0 {
			return nil, fmt.Errorf("no pods of %s", f.Target)
		}
		if kind == kindDeletePod {
			pods = pods[s.rng.IntN(len(pods)):][:1]
		} else {
			f.Affects = []string{f.Target}
		}
		for _, p := range pods {
			if err := c.DeletePod(ctx, ns, p.Name); err != nil {
				return nil, err
			}
		}
		// The fault ends when the deleted pods are gone and their
		// replacements ready (the Deployment's status lags the deletion).
		for _, p := range pods {
			if err := cluster.Poll(ctx, 3*time.Minute, func(ctx context.Context) (bool, error) {
				_, err := core.Pods(ns).Get(ctx, p.Name, metav1.GetOptions{})
				return apierrors.IsNotFound(err), nil
			}); err != nil {
				return nil, fmt.Errorf("pod %s/%s not gone: %w", ns, p.Name, err)
			}
		}
		return s.probeAll(f), s.waitRolledOut(ctx, ns, name)

	case kindScaleZero:
		ns, name := s.pickDeployment(false)
		f.Target, f.Affects = ns+"/"+name, []string{ns + "/" + name}
		if err := c.Scale(ctx, "deployment", ns, name, 0); err != nil {
			return nil, err
		}
		s.sleep(ctx, s.between(3*time.Second, 10*time.Second))
		if err := c.Scale(ctx, "deployment", ns, name, replicas); err != nil {
			return nil, err
		}
		return s.probeAll(f), s.waitRolledOut(ctx, ns, name)

	case kindSelector:
		// Point the Service at another Deployment's pods, then back: the
		// other pods are ready, so nothing may fail.
		ns, name := s.pickDeployment(false)
		other := name
		for other == name {
			_, other = s.pickDeployment(false)
		}
		f.Target = ns + "/" + name
		if err := s.patchService(ctx, ns, name, fmt.Sprintf(`{"spec":{"selector":{"app":%q}}}`, other)); err != nil {
			return nil, err
		}
		s.sleep(ctx, s.between(3*time.Second, 10*time.Second))
		return s.probeAll(f), s.patchService(ctx, ns, name, fmt.Sprintf(`{"spec":{"selector":{"app":%q}}}`, name))

	case kindPorts:
		// The Service's port moves (clients of the old one lose it) and
		// its targetPort becomes the container port's name; then back.
		ns, name := s.pickDeployment(false)
		f.Target, f.Affects = ns+"/"+name, []string{ns + "/" + name}
		// A JSON merge patch replaces the list (a strategic one would add
		// a port, merging on the port number).
		moved := `{"spec":{"ports":[{"name":"http","port":18080,"targetPort":"http","protocol":"TCP"}]}}`
		if err := s.mergePatchService(ctx, ns, name, moved); err != nil {
			return nil, err
		}
		s.sleep(ctx, s.between(3*time.Second, 10*time.Second))
		back := fmt.Sprintf(`{"spec":{"ports":[{"name":"http","port":%d,"targetPort":%d,"protocol":"TCP"}]}}`, port, port)
		return s.probeAll(f), s.mergePatchService(ctx, ns, name, back)

	case kindSlices:
		// Delete a Service's EndpointSlices (the controller writes them
		// again) and relabel another's: kubefwd sees them go and come.
		ns, name := s.pickDeployment(false)
		// Without its EndpointSlices a Service has no endpoints for anyone
		// (kube-proxy follows them too) until the controller writes them
		// again: its connections may fail until then.
		f.Target, f.Affects = ns+"/"+name, []string{ns + "/" + name}
		sel := "kubernetes.io/service-name=" + name
		if err := c.Clientset.DiscoveryV1().EndpointSlices(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: sel}); err != nil {
			return nil, err
		}
		ns2, name2 := s.pickDeployment(false)
		list, err := c.Clientset.DiscoveryV1().EndpointSlices(ns2).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + name2})
		if err != nil {
			return nil, err
		}
		for _, es := range list.Items {
			patch := fmt.Sprintf(`{"metadata":{"labels":{"kubefwd-soak/touched":"%d"}}}`, time.Now().UnixNano())
			if _, err := c.Clientset.DiscoveryV1().EndpointSlices(ns2).Patch(ctx, es.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
				return nil, err
			}
		}
		return s.probeAll(f), nil

	case kindNamespace:
		ns := volatileNamespace
		f.Target, f.Affects = ns, []string{ns + "/"}
		if err := core.Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
			return nil, err
		}
		if err := cluster.Poll(ctx, 3*time.Minute, func(ctx context.Context) (bool, error) {
			_, err := core.Namespaces().Get(ctx, ns, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		}); err != nil {
			return nil, fmt.Errorf("namespace %s not gone: %w", ns, err)
		}
		s.mu.Lock()
		s.extras = slices.DeleteFunc(s.extras, func(e string) bool { return strings.HasPrefix(e, ns+"/") })
		s.mu.Unlock()
		s.traffic.removeTargets(func(t target) bool { return strings.HasPrefix(t.key, ns+"/") && !s.isOriginal(t) })
		if err := createNamespace(ctx, c, ns); err != nil {
			return nil, err
		}
		if err := s.waitNamespaceReady(ctx, ns); err != nil {
			return nil, err
		}
		return s.probeAll(f), s.retarget(ctx, ns)

	case kindServiceAdd:
		ns, _ := s.pickDeployment(false)
		s.mu.Lock()
		s.added++
		name := fmt.Sprintf("x%d", s.added)
		s.mu.Unlock()
		f.Target, f.Affects = ns+"/"+name, []string{ns + "/" + name}
		if err := createApp(ctx, c, ns, name); err != nil {
			return nil, err
		}
		if err := s.waitRolledOut(ctx, ns, name); err != nil {
			return nil, err
		}
		tg := target{key: f.Target, name: name + "." + ns, ns: ns}
		return func(ctx context.Context, deadline time.Time) (time.Time, bool) {
			at, ok := s.traffic.probe(ctx, []target{tg}, deadline)
			if ok {
				s.mu.Lock()
				s.extras = append(s.extras, f.Target)
				s.mu.Unlock()
				s.traffic.addTarget(tg)
			}
			return at, ok
		}, nil

	case kindServiceRemove:
		s.mu.Lock()
		var victim string
		if len(s.extras) > 0 {
			i := s.rng.IntN(len(s.extras))
			victim = s.extras[i]
			s.extras = slices.Delete(s.extras, i, i+1)
		}
		s.mu.Unlock()
		if victim == "" {
			// Nothing added yet: remove one the soak adds for the purpose.
			ns, _ := s.pickDeployment(false)
			s.mu.Lock()
			s.added++
			victim = fmt.Sprintf("%s/x%d", ns, s.added)
			s.mu.Unlock()
			ns, name, _ := strings.Cut(victim, "/")
			if err := createApp(ctx, c, ns, name); err != nil {
				return nil, err
			}
			if err := s.waitRolledOut(ctx, ns, name); err != nil {
				return nil, err
			}
		}
		f.Target, f.Affects = victim, []string{victim}
		ns, name, _ := strings.Cut(victim, "/")
		s.traffic.removeTargets(func(t target) bool { return t.key == victim })
		if err := core.Services(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			return nil, err
		}
		if err := apps.Deployments(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			return nil, err
		}
		hostname := name + "." + ns
		return func(ctx context.Context, deadline time.Time) (time.Time, bool) {
			err := cluster.Poll(ctx, time.Until(deadline), func(context.Context) (bool, error) {
				s.traffic.reindex()
				_, in := (*s.traffic.index.Load())[hostname]
				return !in, nil
			})
			return time.Now(), err == nil
		}, nil

	case kindAPIServer:
		f.All = true
		d := s.between(10*time.Second, 60*time.Second)
		if s.quick {
			d = 10 * time.Second
		}
		f.Target = fmt.Sprintf("for %s", d.Round(time.Second))
		if err := c.StopAPIServer(ctx); err != nil {
			return nil, err
		}
		s.sleep(ctx, d)
		return s.probeAll(f), c.StartAPIServer(ctx)

	case kindKwok:
		f.All = true
		if err := c.StopComponent(ctx, cluster.KwokController); err != nil {
			return nil, err
		}
		s.sleep(ctx, 2*time.Second)
		return s.probeAll(f), c.StartComponent(ctx, cluster.KwokController)

	case kindRefresh:
		return s.probeAll(f), s.kf.refresh(ctx)

	case kindStop:
		f.All = true
		d := 60 * time.Second
		if s.quick {
			d = 15 * time.Second
		}
		if err := s.kf.signal(syscall.SIGSTOP); err != nil {
			return nil, err
		}
		s.sleep(ctx, d)
		return s.probeAll(f), s.kf.signal(syscall.SIGCONT)

	case kindKill:
		f.All = true
		s.kf.kill()
		if err := s.kf.start(); err != nil {
			return nil, err
		}
		return func(ctx context.Context, deadline time.Time) (time.Time, bool) {
			at, ok := s.traffic.probe(ctx, s.affected(f), deadline)
			s.checkStale(ctx, "after kill -9 and restart")
			return at, ok
		}, nil

	case kindHostsEdit, kindHostsReset:
		// A reset takes every name away until kubefwd writes its block back;
		// an edit keeps them and may break nothing.
		f.All = kind == kindHostsReset
		return s.probeAll(f), s.rewriteHosts(kind == kindHostsReset, &f.Target)
	}
	return nil, fmt.Errorf("unknown fault kind %q", kind)
}

func (s *soak) isOriginal(t target) bool {
	ns, rest, _ := strings.Cut(t.key, "/")
	name, _, _ := strings.Cut(rest, "/")
	return slices.Contains(namespaces, ns) && (name == "db" || slices.Contains(deploymentNames(), name))
}

func (s *soak) patchService(ctx context.Context, ns, name, patch string) error {
	_, err := s.c.Clientset.CoreV1().Services(ns).Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}

func (s *soak) mergePatchService(ctx context.Context, ns, name, patch string) error {
	_, err := s.c.Clientset.CoreV1().Services(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}

// waitRolledOut waits until a Deployment's pods are all updated and ready.
func (s *soak) waitRolledOut(ctx context.Context, ns, name string) error {
	return cluster.Poll(ctx, 3*time.Minute, func(ctx context.Context) (bool, error) {
		d, err := s.c.Clientset.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return rolledOut(d), nil
	})
}

func rolledOut(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	return st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want && st.ReadyReplicas == want && st.Replicas == want
}

func (s *soak) waitNamespaceReady(ctx context.Context, ns string) error {
	for _, name := range deploymentNames() {
		if err := s.waitRolledOut(ctx, ns, name); err != nil {
			return fmt.Errorf("%s/%s: %w", ns, name, err)
		}
	}
	_, err := s.c.WaitServiceReady(ctx, ns, "db", replicas, 3*time.Minute)
	return err
}

// retarget learns a namespace's names from kubefwd's status again (its
// headless pods are new pods) and puts them back in the clients' cycle.
func (s *soak) retarget(ctx context.Context, ns string) error {
	var found []target
	err := cluster.Poll(ctx, 2*time.Minute, func(ctx context.Context) (bool, error) {
		st, err := s.kf.status(ctx)
		if err != nil {
			return false, nil
		}
		found = slices.DeleteFunc(targetsOf(st), func(t target) bool { return t.ns != ns })
		return len(found) == servicesPerNamespace+1+replicas, nil
	})
	if err != nil {
		return fmt.Errorf("kubefwd does not forward all of %s again: %w", ns, err)
	}
	s.traffic.removeTargets(func(t target) bool { return t.ns == ns })
	for _, t := range found {
		s.traffic.addTarget(t)
	}
	return nil
}

// rewriteHosts plays another program writing the hosts file: an edit keeps
// every line and adds one (in place, as an editor saving over the file
// does, or by rename); a reset writes the user's lines and its own
// without kubefwd's block, as a tool regenerating the file would.
func (s *soak) rewriteHosts(reset bool, what *string) error {
	path := s.kf.hostsPath
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s.mu.Lock()
	n := len(s.faults) + 1
	line := fmt.Sprintf("10.254.%d.%d soak-other-%d\n", n/250, n%250+1, n)
	s.userHosts = append(s.userHosts, line...)
	content := append(old, line...)
	if reset {
		content = slices.Clone(s.userHosts)
	}
	s.mu.Unlock()
	inPlace := s.rng.IntN(2) == 0
	*what = map[bool]string{true: "in place", false: "by rename"}[inPlace]
	if inPlace {
		return os.WriteFile(path, content, 0o644)
	}
	tmp := filepath.Join(filepath.Dir(path), ".hosts.other")
	if err := os.WriteFile(tmp, content, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// userBytes is the hosts file without any kubefwd block.
func userBytes(content []byte) []byte {
	for id := range hosts.Blocks(content) {
		content = hosts.Remove(content, hosts.Block{ID: id})
	}
	return content
}

// checkHosts compares the hosts file's lines outside kubefwd's block with
// what the user and the other program wrote.
func (s *soak) checkHosts(when string) {
	data, err := os.ReadFile(s.kf.hostsPath)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.hostsFindings = append(s.hostsFindings, fmt.Sprintf("%s: cannot read the hosts file: %v", when, err))
		return
	}
	if got := userBytes(data); string(got) != string(s.userHosts) {
		s.hostsFindings = append(s.hostsFindings, fmt.Sprintf("%s: the lines outside kubefwd's block differ from the user's (%d bytes, want %d)", when, len(got), len(s.userHosts)))
	}
}

// checkStale counts lines in the hosts block that kubefwd's status does
// not hold, once its status settles.
func (s *soak) checkStale(ctx context.Context, when string) {
	var stale int
	err := cluster.Poll(ctx, 20*time.Second, func(ctx context.Context) (bool, error) {
		st, err := s.kf.status(ctx)
		if err != nil {
			return false, nil
		}
		data, err := os.ReadFile(s.kf.hostsPath)
		if err != nil {
			return false, err
		}
		stale = staleNames(data, st)
		return stale == 0, nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log("soak: %s: %d stale hosts names", when, stale)
	}
	s.mu.Lock()
	s.staleAfterKill = append(s.staleAfterKill, stale)
	s.mu.Unlock()
}

// targetsOf lists what kubefwd forwards in the soak's namespaces: each
// Service by svc.ns, each headless pod by its own name.
func targetsOf(st api.Status) []target {
	var out []target
	for _, f := range st.Forwards {
		if !strings.HasPrefix(f.Namespace, "soak-") || f.Address == "" {
			continue
		}
		name := hostnameFor(f.Names, f.Namespace)
		if name == "" {
			continue
		}
		t := target{key: f.Namespace + "/" + f.Service, name: name, ns: f.Namespace}
		if f.Pod != "" {
			t.key += "/" + f.Pod
			t.pod = f.Pod
		}
		out = append(out, t)
	}
	return out
}

func hostnameFor(names []string, ns string) string {
	best := ""
	for _, n := range names {
		if strings.HasSuffix(n, "."+ns) && (best == "" || len(n) < len(best)) {
			best = n
		}
	}
	return best
}
