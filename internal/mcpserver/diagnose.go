package mcpserver

import (
	"fmt"
	"strings"

	"github.com/kubefwd/kubefwd/internal/api"
)

// Finding is one reason a name may not answer, with what to do about it.
type Finding struct {
	Problem string `json:"problem"`
	Fix     string `json:"fix"`
}

// Diagnosis is diagnose_service's answer.
type Diagnosis struct {
	Service  string    `json:"service"`
	Healthy  bool      `json:"healthy"`
	Findings []Finding `json:"findings"`
}

// diagnose explains, from one status snapshot, why service (a hostname,
// svc, svc.ns, ns/svc or ctx/ns/svc) may not answer: the pure core of
// diagnose_service.
func diagnose(st api.Status, service string) Diagnosis {
	d := Diagnosis{Service: service}
	add := func(problem, fix string) { d.Findings = append(d.Findings, Finding{problem, fix}) }

	var forwards []api.Forward
	for _, i := range api.Match(st.Forwards, service) {
		forwards = append(forwards, st.Forwards[i])
	}
	for _, s := range st.HostsSkipped {
		if s.Name == service {
			add(fmt.Sprintf("the name %s is not in the hosts file: %s", s.Name, s.Reason),
				"use another of the Service's names (list_services shows them), or remove the hosts file's own entry for it")
		}
	}
	if len(forwards) == 0 {
		ns := namespaceOf(service)
		watched := false
		for _, c := range st.Namespaces {
			for _, n := range c.Namespaces {
				if n.Namespace == ns || n.Namespace == "" {
					watched = true
					if n.Forbidden {
						add(fmt.Sprintf("kubefwd may not list Services in namespace %s: %s", ns, n.Error),
							"ask for RBAC to list and watch services and endpointslices there, or use a context that has it")
					} else if n.Error != "" {
						add(fmt.Sprintf("watching namespace %s fails: %s", ns, n.Error), "check the cluster is reachable; kubefwd retries by itself")
					}
				}
			}
		}
		switch {
		case ns != "" && !watched:
			add(fmt.Sprintf("namespace %s is not forwarded", ns), "add it: add_namespaces with "+ns)
		case len(d.Findings) == 0:
			add(fmt.Sprintf("no forwarded Service is named %s", service),
				"check the name with list_services; if its namespace is not forwarded yet, add it with add_namespaces")
		}
		return d
	}
	for _, f := range forwards {
		what := f.Namespace + "/" + f.Service
		if f.Pod != "" {
			what = f.Namespace + "/" + f.Pod + "." + f.Service
		}
		switch f.State {
		case api.StatePaused:
			add(what+" is paused: "+f.Reason, "resume_service with "+what)
		case api.StateNotForwarded:
			fix := "nothing kubefwd can do: port-forward reaches pods only (see the reason)"
			switch {
			case strings.Contains(f.Reason, "--relay"):
				fix = "restart kubefwd with --relay: a relay pod carries it (see the README on what that pod may do)"
			case strings.Contains(f.Reason, "cannot create the relay"):
				fix = "ask the cluster's admin for create, get, patch and delete on pods in the relay's namespace (RBAC), or choose another with --relay-namespace"
			}
			add(what+" cannot be forwarded: "+f.Reason, fix)
		case api.StateUnreachable:
			add(what+" has ready pods that connections cannot reach: "+f.Reason,
				"check the pod answers on its port (get_pod_logs); if it does, refresh "+what+" to reopen its tunnels")
		case api.StateForbidden:
			add(what+" is refused by the API server: "+f.Reason,
				"ask the cluster's admin for get and create on pods/portforward in namespace "+f.Namespace+" (RBAC)")
		case api.StateWaiting:
			add(what+" has no ready pod: "+f.Reason, "check its pods (kubectl get pods, get_pod_logs once one runs); connections wait for one")
		}
		failing := false
		for _, p := range f.Ports {
			if p.LastError != "" && p.Failed > 0 {
				failing = true
				add(fmt.Sprintf("%s port %d: %d connection(s) could not be carried, the last: %s", what, p.Local, p.Failed, p.LastError),
					"if the pod is healthy, refresh "+what+" to reopen its tunnels")
			}
		}
		for _, s := range f.Skipped {
			fix := "that port is not forwarded; use another"
			if strings.Contains(s, "--relay") {
				fix = "restart kubefwd with --relay to forward it through a relay pod"
			}
			add(what+" port "+s, fix)
		}
		for _, t := range st.Tunnels {
			if failing && t.Context == f.Context && t.DialFailures > 0 {
				add(fmt.Sprintf("context %s: %d of %d tunnel dials failed", t.Context, t.DialFailures, t.Dials),
					"check that you may create pods/portforward there and that the apiserver is reachable")
			}
		}
	}
	if st.HostsError != "" {
		add("the hosts file cannot be written, so its names may be missing or stale: "+st.HostsError,
			"make the hosts file writable again; kubefwd retries by itself")
	}
	d.Healthy = len(d.Findings) == 0
	if d.Healthy {
		d.Findings = []Finding{}
	}
	return d
}

// namespaceOf guesses the namespace a name points into: svc.ns, ns/svc,
// ctx/ns/svc; "" when the name does not say.
func namespaceOf(name string) string {
	if parts := strings.Split(name, "/"); len(parts) > 1 {
		return parts[len(parts)-2]
	}
	if parts := strings.Split(name, "."); len(parts) > 1 {
		return parts[1]
	}
	return ""
}
