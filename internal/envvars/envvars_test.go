package envvars

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/kubefwd/kubefwd/internal/api"
)

// status is what `kubefwd svc -n demo -n demo2` reports, in status order.
func status() api.Status {
	return api.Status{Forwards: []api.Forward{
		{Context: "dev", Namespace: "demo", Service: "a-b", Address: "127.1.0.1", State: api.StateActive,
			Names: []string{"a-b", "a-b.demo"}, Ports: []api.Port{{Port: 80, Local: 80}}},
		{Context: "dev", Namespace: "demo", Service: "db", Address: "127.1.0.2", State: api.StateWaiting,
			Names: []string{"db", "db.demo"}, Ports: []api.Port{{Name: "postgres", Port: 5432, Local: 5432}}},
		{Context: "dev", Namespace: "demo", Service: "db", Pod: "db-0", Address: "127.1.0.3", State: api.StateActive,
			Names: []string{"db-0.db", "db-0.db.demo"}, Ports: []api.Port{{Name: "postgres", Port: 5432, Local: 5432}}},
		{Context: "dev", Namespace: "demo", Service: "external", State: api.StateNotForwarded, Reason: "ExternalName"},
		{Context: "dev", Namespace: "demo", Service: "web", Address: "127.1.0.4", State: api.StateActive,
			Names: []string{"web", "web.demo", "web.demo.svc"},
			Ports: []api.Port{{Name: "http", Port: 80, Local: 8080}, {Name: "grpc-api", Port: 9090, Local: 9090}}},
		// The Service "a" in namespace "b": its first name a.b makes A_B,
		// which a-b above already has.
		{Context: "dev", Namespace: "b", Service: "a", Address: "127.1.0.5", State: api.StateActive,
			Names: []string{"a.b", "a.b.svc"}, Ports: []api.Port{{Port: 81, Local: 81}}},
		{Context: "dev", Namespace: "demo2", Service: "web", Address: "127.1.0.6", State: api.StateActive,
			Names: []string{"web.demo2", "web.demo2.svc"}, Ports: []api.Port{{Port: 80, Local: 80}}},
	}}
}

func render(vars []Var) string {
	var b strings.Builder
	for _, v := range vars {
		b.WriteString(v.Name + "=" + v.Value + "\n")
	}
	return b.String()
}

func TestFor(t *testing.T) {
	for _, tc := range []struct {
		name     string
		services []string
		want     string
	}{
		{"everything that listens", nil, `A_B_HOST=a-b
A_B_ADDR=127.1.0.1
A_B_PORT=80
DB_HOST=db
DB_ADDR=127.1.0.2
DB_PORT=5432
DB_PORT_POSTGRES=5432
DB_0_DB_HOST=db-0.db
DB_0_DB_ADDR=127.1.0.3
DB_0_DB_PORT=5432
DB_0_DB_PORT_POSTGRES=5432
WEB_HOST=web
WEB_ADDR=127.1.0.4
WEB_PORT=8080
WEB_PORT_HTTP=8080
WEB_PORT_GRPC_API=9090
A_B_SVC_HOST=a.b
A_B_SVC_ADDR=127.1.0.5
A_B_SVC_PORT=81
WEB_DEMO2_HOST=web.demo2
WEB_DEMO2_ADDR=127.1.0.6
WEB_DEMO2_PORT=80
`},
		{"a hostname is that forward alone", []string{"web"}, "WEB_HOST=web\nWEB_ADDR=127.1.0.4\nWEB_PORT=8080\nWEB_PORT_HTTP=8080\nWEB_PORT_GRPC_API=9090\n"},
		{"another namespace's hostname", []string{"web.demo2"}, "WEB_DEMO2_HOST=web.demo2\nWEB_DEMO2_ADDR=127.1.0.6\nWEB_DEMO2_PORT=80\n"},
		{"ns/svc", []string{"demo2/web"}, "WEB_DEMO2_HOST=web.demo2\nWEB_DEMO2_ADDR=127.1.0.6\nWEB_DEMO2_PORT=80\n"},
		{"a Service name no hostname has: every namespace's", []string{"a"}, "A_B_HOST=a.b\nA_B_ADDR=127.1.0.5\nA_B_PORT=81\n"},
		{"ctx/ns/svc, a headless Service with its pods", []string{"dev/demo/db"}, `DB_HOST=db
DB_ADDR=127.1.0.2
DB_PORT=5432
DB_PORT_POSTGRES=5432
DB_0_DB_HOST=db-0.db
DB_0_DB_ADDR=127.1.0.3
DB_0_DB_PORT=5432
DB_0_DB_PORT_POSTGRES=5432
`},
		{"a Service not forwarded gives nothing", []string{"external"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := For(status(), tc.services)
			if err != nil {
				t.Fatal(err)
			}
			if r := render(got); r != tc.want {
				t.Errorf("got\n%s\nwant\n%s", r, tc.want)
			}
		})
	}
}

func TestForUnknown(t *testing.T) {
	_, err := For(status(), []string{"web", "nope", "demo3/web"})
	if err == nil || !strings.Contains(err.Error(), "nope, demo3/web") || strings.Contains(err.Error(), "web,") {
		t.Errorf("err = %v; want it to name nope and demo3/web only", err)
	}
}

// When every name a forward could take is taken, a number frees one.
func TestForNumbersLastResort(t *testing.T) {
	st := api.Status{Forwards: []api.Forward{
		{Context: "c", Namespace: "n", Service: "s", Address: "127.0.0.2", Names: []string{"x"}, Ports: []api.Port{{Port: 1, Local: 1}}},
		{Context: "c", Namespace: "n", Service: "t", Address: "127.0.0.3", Names: []string{"x"}, Ports: []api.Port{{Port: 1, Local: 1}}},
		{Context: "c", Namespace: "n", Service: "t", Address: "127.0.0.4", Names: []string{"x"}, Ports: []api.Port{{Port: 1, Local: 1}}},
	}}
	got, err := For(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	var prefixes []string
	for _, v := range got {
		if p, ok := strings.CutSuffix(v.Name, "_HOST"); ok {
			prefixes = append(prefixes, p)
		}
	}
	if strings.Join(prefixes, " ") != "X T_N_C T_N_C_2" {
		t.Errorf("prefixes %v", prefixes)
	}
}

func TestIdentifier(t *testing.T) {
	for in, want := range map[string]string{
		"web": "WEB", "web.demo2": "WEB_DEMO2", "db-0.db": "DB_0_DB", "9lives": "_9LIVES", "": "", "grpc-api": "GRPC_API", "ünï": "_N_",
	} {
		if got := Identifier(in); got != want {
			t.Errorf("Identifier(%q) = %q, want %q", in, got, want)
		}
	}
}

var identifier = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

func FuzzIdentifier(f *testing.F) {
	for _, s := range []string{"web", "9", "a.b-c", "ü", " "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Identifier(s)
		if s == "" {
			if got != "" {
				t.Fatalf("Identifier(%q) = %q", s, got)
			}
			return
		}
		if !identifier.MatchString(got) {
			t.Fatalf("Identifier(%q) = %q, not a variable name", s, got)
		}
	})
}

func TestFormat(t *testing.T) {
	vars := []Var{{"WEB_HOST", "web"}, {"ODD", "it's $HOME\n\"x\""}}
	shell, err := Format(vars, FormatShell)
	if err != nil {
		t.Fatal(err)
	}
	if want := "export WEB_HOST='web'\nexport ODD='it'\\''s $HOME\n\"x\"'\n"; shell != want {
		t.Errorf("shell:\n%s\nwant\n%s", shell, want)
	}
	dotenv, err := Format(vars, FormatDotenv)
	if err != nil {
		t.Fatal(err)
	}
	if want := "WEB_HOST=web\nODD=\"it's \\$HOME\\n\\\"x\\\"\"\n"; dotenv != want {
		t.Errorf("dotenv:\n%s\nwant\n%s", dotenv, want)
	}
	js, err := Format(vars, FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(js), &m); err != nil || m["ODD"] != vars[1].Value || m["WEB_HOST"] != "web" {
		t.Errorf("json %s: %v", js, err)
	}
	if _, err := Format(vars, "yaml"); err == nil || !strings.Contains(err.Error(), `"yaml"`) {
		t.Errorf("unknown format: %v", err)
	}
}
