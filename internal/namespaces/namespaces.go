// Package namespaces parses the namespaces a running kubefwd should forward
// (`ns` or `context/ns`, from the command line, the control API or a file)
// and follows a file of them as it changes.
package namespaces

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubefwd/kubefwd/internal/api"
)

// Ref is one namespace, in one context or (Context empty) in every context
// the instance forwards from.
type Ref = api.NamespaceRef

// Parse reads `namespace` or `context/namespace`. Context names may hold
// '/' themselves (EKS ARNs do), namespaces cannot: the last '/' splits.
func Parse(s string) (Ref, error) {
	s = strings.TrimSpace(s)
	var r Ref
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		r.Context, r.Namespace = s[:i], s[i+1:]
		if r.Context == "" {
			return Ref{}, fmt.Errorf("%q: the context before '/' is empty", s)
		}
	} else {
		r.Namespace = s
	}
	if r.Namespace == "" {
		return Ref{}, fmt.Errorf("%q: no namespace given", s)
	}
	if errs := validation.IsDNS1123Label(r.Namespace); len(errs) > 0 {
		return Ref{}, fmt.Errorf("namespace %q is not a valid name: %s", r.Namespace, errs[0])
	}
	return r, nil
}

// ParseAll parses each of in.
func ParseAll(in []string) ([]Ref, error) {
	out := make([]Ref, 0, len(in))
	for _, s := range in {
		r, err := Parse(s)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// ParseFile reads a namespaces file: one entry per line, blank lines and
// '#' comments ignored.
func ParseFile(text string) ([]Ref, error) {
	var out []Ref
	for i, line := range strings.Split(text, "\n") {
		if c := strings.IndexByte(line, '#'); c >= 0 {
			line = line[:c]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		r, err := Parse(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// PerContext spreads refs over contexts (the instance's, in order): a bare
// namespace goes to every context, `context/ns` to that one. Namespaces keep
// the order they were given in (the first gets the short names); every
// context is in the result, possibly with no namespace.
func PerContext(refs []Ref, contexts []string) (map[string][]string, error) {
	out := make(map[string][]string, len(contexts))
	for _, c := range contexts {
		out[c] = []string{}
	}
	var unknown []string
	for _, r := range refs {
		targets := contexts
		if r.Context != "" {
			if !slices.Contains(contexts, r.Context) {
				unknown = append(unknown, r.Context)
				continue
			}
			targets = []string{r.Context}
		}
		for _, c := range targets {
			if !slices.Contains(out[c], r.Namespace) {
				out[c] = append(out[c], r.Namespace)
			}
		}
	}
	if len(unknown) > 0 {
		return nil, errors.New(unknownContexts(unknown, contexts))
	}
	return out, nil
}

func unknownContexts(unknown, contexts []string) string {
	slices.Sort(unknown)
	unknown = slices.Compact(unknown)
	return fmt.Sprintf("context %s is not forwarded by this kubefwd (it forwards from: %s)",
		quoteJoin(unknown), strings.Join(contexts, ", "))
}

func quoteJoin(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}
