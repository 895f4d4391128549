// Package envvars turns what a running kubefwd forwards into environment
// variables a local program can be pointed at: WEB_HOST=web, WEB_PORT=80,
// WEB_ADDR=127.1.2.3, one set per forward. Names follow the hostnames
// kubefwd wrote (web → WEB, web.demo2 → WEB_DEMO2), so they are as
// predictable as the names themselves.
package envvars

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kubefwd/kubefwd/internal/api"
)

// Var is one variable.
type Var struct {
	Name, Value string
}

// For returns the variables of every forward that listens (active, or
// waiting for a pod) in st, in status order; with services, only of the
// forwards they name: a hostname kubefwd wrote (web, web.demo2), a Service
// name (in every namespace, with its pods when headless), ns/svc or
// ctx/ns/svc. A name that matches nothing is an error naming it.
func For(st api.Status, services []string) ([]Var, error) {
	want := map[int]bool{} // indexes into st.Forwards
	var unknown []string
	for _, w := range services {
		hits := api.Match(st.Forwards, w)
		if len(hits) == 0 {
			unknown = append(unknown, w)
		}
		for _, i := range hits {
			want[i] = true
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("no forwarded service matches %s (see kubefwd status)", strings.Join(unknown, ", "))
	}

	taken := map[string]bool{}
	var out []Var
	for i, f := range st.Forwards {
		if f.Address == "" || len(f.Ports) == 0 {
			continue // not forwarded: nothing to point at
		}
		if len(services) > 0 && !want[i] {
			continue
		}
		prefix := pick(candidates(f), taken)
		host := f.Address
		if len(f.Names) > 0 {
			host = f.Names[0]
		}
		vars := []Var{
			{prefix + "_HOST", host},
			{prefix + "_ADDR", f.Address},
			{prefix + "_PORT", strconv.Itoa(int(f.Ports[0].Local))},
		}
		for _, p := range f.Ports {
			if n := Identifier(p.Name); n != "" {
				vars = append(vars, Var{prefix + "_PORT_" + n, strconv.Itoa(int(p.Local))})
			}
		}
		for _, v := range vars {
			taken[v.Name] = true
		}
		out = append(out, vars...)
	}
	return out, nil
}

// candidates are the prefixes f could have, most wanted first: its
// hostnames in kubefwd's order (the shortest first), then the full
// context/namespace/service (and pod) path.
func candidates(f api.Forward) []string {
	var out []string
	for _, n := range f.Names {
		out = append(out, Identifier(n))
	}
	full := []string{f.Service, f.Namespace, f.Context}
	if f.Pod != "" {
		full = append([]string{f.Pod}, full...)
	}
	out = append(out, Identifier(strings.Join(full, "_")))
	return slices.DeleteFunc(out, func(s string) bool { return s == "" })
}

// pick returns the first candidate none of whose variables is taken,
// else the last one with a number that frees them.
func pick(cands []string, taken map[string]bool) string {
	free := func(p string) bool { return !taken[p+"_HOST"] && !taken[p+"_ADDR"] && !taken[p+"_PORT"] }
	for _, c := range cands {
		if free(c) {
			return c
		}
	}
	base := "FORWARD"
	if len(cands) > 0 {
		base = cands[len(cands)-1]
	}
	for i := 2; ; i++ {
		if p := base + "_" + strconv.Itoa(i); free(p) {
			return p
		}
	}
}

// Identifier makes s a portable environment variable name: upper-case
// letters, digits and '_', not starting with a digit; everything else
// ('.', '-', …) becomes '_'. It returns "" for an empty s.
func Identifier(s string) string {
	if s == "" {
		return ""
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	out := b.String()
	if out[0] >= '0' && out[0] <= '9' {
		out = "_" + out
	}
	return out
}

// Formats For's variables can be written in.
const (
	FormatShell  = "shell"  // export NAME='value', for eval or source
	FormatDotenv = "dotenv" // NAME=value, for --env-file and compose
	FormatJSON   = "json"   // one object
)

// Format writes vars in format.
func Format(vars []Var, format string) (string, error) {
	var b strings.Builder
	switch format {
	case FormatShell:
		for _, v := range vars {
			fmt.Fprintf(&b, "export %s=%s\n", v.Name, shellQuote(v.Value))
		}
	case FormatDotenv:
		for _, v := range vars {
			fmt.Fprintf(&b, "%s=%s\n", v.Name, dotenvValue(v.Value))
		}
	case FormatJSON:
		// An object keeps no order; the keys come out sorted.
		m := make(map[string]string, len(vars))
		for _, v := range vars {
			m[v.Name] = v.Value
		}
		data, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return "", err
		}
		b.Write(data)
		b.WriteByte('\n')
	default:
		return "", fmt.Errorf("format %q: want %s, %s or %s", format, FormatShell, FormatDotenv, FormatJSON)
	}
	return b.String(), nil
}

// shellQuote single-quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// dotenvValue leaves plain values (hostnames, addresses, ports) as they
// are and double-quotes anything else, escaping what dotenv readers
// interpret.
func dotenvValue(s string) string {
	plain := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_:/", r)) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "$", `\$`)
	return `"` + r.Replace(s) + `"`
}
