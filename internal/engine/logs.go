package engine

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/catalog"
)

// Logs copies the log of one pod of a forwarded Service to the writer
// begin returns once the source is known, read with the instance's own
// credentials, until the log ends (or, following, until ctx does). Only the
// Service's own pods may be read: the API names a forward, not any pod of
// the cluster. What the request names and the instance does not have is an
// *api.NotFoundError.
func (e *Engine) Logs(ctx context.Context, req api.LogsRequest, begin func(api.LogSource) io.Writer) error {
	key, pods, err := e.logTarget(req.Service)
	if err != nil {
		return err
	}
	pod := req.Pod
	switch {
	case pod == "" && len(pods) == 0:
		return &api.NotFoundError{Message: fmt.Sprintf("%s has no ready pod to read a log from", req.Service)}
	case pod == "":
		pod = pods[0]
	case !slices.Contains(pods, pod):
		return &api.NotFoundError{Message: fmt.Sprintf("pod %q is not a ready pod of %s (its pods: %s)", pod, req.Service, strings.Join(pods, ", "))}
	}
	client := e.clusters[key.Context].target.Client
	src := api.LogSource{Pod: pod, Container: req.Container}
	// The pod's containers, to choose the default as kubectl does and to
	// offer the others; without the right to read the pod, the cluster's
	// own answer about containers stands.
	if p, err := client.Pod(ctx, key.Namespace, pod); err == nil {
		for _, c := range p.Spec.Containers {
			src.Containers = append(src.Containers, c.Name)
		}
		switch {
		case src.Container == "":
			src.Container = defaultContainer(p)
		case !slices.Contains(src.Containers, src.Container):
			return &api.NotFoundError{Message: fmt.Sprintf("pod %s has no container %q (its containers: %s)", pod, src.Container, strings.Join(src.Containers, ", "))}
		}
	}
	opts := &corev1.PodLogOptions{Container: src.Container, Follow: req.Follow}
	if req.Tail > 0 {
		opts.TailLines = &req.Tail
	}
	stream, err := client.PodLog(ctx, key.Namespace, pod, opts)
	if err != nil {
		return fmt.Errorf("log of pod %s/%s: %w", key.Namespace, pod, err)
	}
	defer stream.Close()
	if _, err := io.Copy(begin(src), stream); err != nil && ctx.Err() == nil {
		return fmt.Errorf("log of pod %s/%s: %w", key.Namespace, pod, err)
	}
	return nil
}

// defaultContainer is the container kubectl reads when none is named: the
// one the pod's kubectl.kubernetes.io/default-container annotation names,
// else the first.
func defaultContainer(p *corev1.Pod) string {
	want := p.Annotations["kubectl.kubernetes.io/default-container"]
	for _, c := range p.Spec.Containers {
		if c.Name == want {
			return want
		}
	}
	if len(p.Spec.Containers) > 0 {
		return p.Spec.Containers[0].Name
	}
	return ""
}

// logTarget finds the one forward service names and its ready pods, sorted.
func (e *Engine) logTarget(service string) (key catalog.Key, pods []string, err error) {
	e.statusMu.Lock()
	defer e.statusMu.Unlock()
	keys, unknown := e.matchForwardsLocked([]string{service}, false)
	if len(unknown) > 0 {
		return key, nil, &api.NotFoundError{Message: fmt.Sprintf("no forwarded service matches %s (see kubefwd status)", service)}
	}
	if len(keys) > 1 {
		var names []string
		for _, k := range keys {
			names = append(names, k.Namespace+"/"+k.Name)
		}
		slices.Sort(names)
		return key, nil, &api.NotFoundError{Message: fmt.Sprintf("%s names %d services (%s); name one", service, len(keys), strings.Join(names, ", "))}
	}
	key = keys[0]
	for _, fe := range e.status[key] {
		for _, pf := range fe.pfs {
			for _, ep := range pf.eps.List() {
				if !slices.Contains(pods, ep.Pod.Name) {
					pods = append(pods, ep.Pod.Name)
				}
			}
		}
	}
	slices.Sort(pods)
	return key, pods, nil
}
