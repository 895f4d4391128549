// Package names builds the hostnames kubefwd writes for Services and pods,
// following upstream kubefwd's scheme so users' habits carry over:
//
//	first namespace of the first context  svc
//	every namespace of the first context  svc.ns, svc.ns.svc, svc.ns.svc.cluster.local
//	first namespace of another context    svc.ctx
//	every namespace, every context         svc.ns.ctx, svc.ns.svc.ctx, svc.ns.svc.cluster.ctx
//
// with --domain D adding svc.D (first namespace, first context) and
// svc.ns.svc.cluster.D (first context). Unlike upstream, the namespace index
// counts per context, so every context's first namespace keeps its short
// svc.ctx names, and anything taken from a kubeconfig is turned into a valid
// DNS label first, so no name can carry spaces, '#' or line breaks into the
// hosts file.
package names

import (
	"strings"
)

// Scope says where a Service sits among the forwarded contexts and namespaces.
type Scope struct {
	Context        string // kubeconfig context name, as given
	ContextIndex   int    // 0 for the first context
	Namespace      string
	NamespaceIndex int    // 0 for the first namespace of this context
	Domain         string // --domain, may be empty
}

// Service returns the hostnames of a Service, most specific last, without
// duplicates. Names that would not be valid DNS names are left out.
func Service(s Scope, service string) []string {
	return build(s, Label(service))
}

// Pod returns the hostnames of one pod of a headless Service: the Service's
// names with the pod name in front (db-0.db, db-0.db.ns, …), as cluster DNS
// resolves StatefulSet pods.
func Pod(s Scope, pod, service string) []string {
	return build(s, Label(pod)+"."+Label(service))
}

func build(s Scope, base string) []string {
	ns := Label(s.Namespace)
	ctx := Label(s.Context)
	domain := Domain(s.Domain)
	var out []string
	add := func(parts ...string) {
		for _, p := range parts {
			if p == "" {
				return
			}
		}
		name := strings.Join(parts, ".")
		if Valid(name) {
			for _, have := range out {
				if have == name {
					return
				}
			}
			out = append(out, name)
		}
	}
	first := s.ContextIndex == 0
	if s.NamespaceIndex == 0 {
		if first {
			add(base)
			if domain != "" {
				add(base, domain)
			}
		} else {
			add(base, ctx)
		}
	}
	if first {
		add(base, ns)
		add(base, ns, "svc")
		add(base, ns, "svc", "cluster", "local")
		if domain != "" {
			add(base, ns, "svc", "cluster", domain)
		}
	}
	add(base, ns, ctx)
	add(base, ns, "svc", ctx)
	add(base, ns, "svc", "cluster", ctx)
	return out
}

// Label turns s into a DNS label: lower case, letters, digits and '-', at
// most 63 characters, not starting or ending with '-'. Everything else
// (':' '/' '@' '.' spaces of EKS ARNs and the like) becomes '-'. It returns
// "" when nothing usable is left.
func Label(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		default:
			if !dash && b.Len() > 0 {
				b.WriteByte('-')
				dash = true
			}
		}
	}
	out := strings.TrimRight(b.String(), "-")
	if len(out) > 63 {
		out = strings.TrimRight(out[:63], "-")
	}
	return out
}

// Domain cleans a --domain value into dot-separated labels; "" if nothing
// usable is left.
func Domain(d string) string {
	var labels []string
	for _, part := range strings.Split(strings.Trim(d, "."), ".") {
		if l := Label(part); l != "" {
			labels = append(labels, l)
		}
	}
	return strings.Join(labels, ".")
}

// Valid reports whether name is a valid DNS name: dot-separated labels of
// letters, digits and '-', none longer than 63 or starting or ending with
// '-', 253 characters at most.
func Valid(name string) bool { return checkSyntax(name) == nil }
