package tui

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/kubefwd/kubefwd/internal/api"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// fixture is an instance with something in every state.
func fixture(bytes int64) api.Status {
	errAt := t0.Add(-90 * time.Second)
	return api.Status{
		Version:  "v0.9.0",
		Contexts: []string{"dev"},
		Namespaces: []api.ContextNamespaces{{Context: "dev", Namespaces: []api.NamespaceState{
			{Namespace: "demo", Synced: true, Services: 4}, {Namespace: "shop", Synced: true, Services: 1}}}},
		Tunnels: []api.TunnelStats{{Context: "dev", Open: 3}},
		API:     []api.APIStats{{Context: "dev"}},
		Forwards: []api.Forward{
			{Context: "dev", Namespace: "demo", Service: "api", Address: "127.1.0.3", Names: []string{"api", "api.demo"},
				State: api.StateWaiting, Reason: "no ready pod; connections wait for one",
				Ports:     []api.Port{{Name: "http", Port: 8080, Local: 8080}},
				Endpoints: []api.Endpoint{{Pod: "api-7d9f-x2x", Node: "kwok-node-1", IP: "10.0.1.7"}}},
			{Context: "dev", Namespace: "demo", Service: "db", Address: "127.1.0.4", Names: []string{"db", "db.demo"}, State: api.StateActive,
				Ports:     []api.Port{{Name: "pg", Port: 5432, Local: 5432, Endpoints: []string{"demo/db-0:5432"}}},
				Endpoints: []api.Endpoint{{Pod: "db-0", Node: "kwok-node-0", IP: "10.0.0.9", Ready: true}}},
			{Context: "dev", Namespace: "demo", Service: "db", Pod: "db-0", Address: "127.1.0.5", Names: []string{"db-0.db", "db-0.db.demo"}, State: api.StateActive,
				Ports:     []api.Port{{Name: "pg", Port: 5432, Local: 5432, Endpoints: []string{"demo/db-0:5432"}}},
				Endpoints: []api.Endpoint{{Pod: "db-0", Node: "kwok-node-0", IP: "10.0.0.9", Ready: true}}},
			{Context: "dev", Namespace: "demo", Service: "legacy", State: api.StateNotForwarded,
				Reason: "ExternalName Service (an alias of db.example.com): there is no pod to port-forward to"},
			{Context: "dev", Namespace: "demo", Service: "web", Address: "127.1.0.2", Names: []string{"web", "web.demo"}, State: api.StateActive,
				Ports: []api.Port{{Name: "http", Port: 80, Local: 80, Connections: 2, BytesIn: bytes, BytesOut: bytes * 20,
					Endpoints: []string{"demo/web-5c7f-abcde:8080", "demo/web-5c7f-fghij:8080"}, Failed: 1, Retried: 2,
					LastError: "pod demo/web-5c7f-zzzzz: connection refused", LastErrorAt: &errAt}},
				Endpoints: []api.Endpoint{{Pod: "web-5c7f-abcde", Node: "kwok-node-0", IP: "10.0.0.2", Ready: true},
					{Pod: "web-5c7f-fghij", Node: "kwok-node-1", IP: "10.0.1.3", Ready: true},
					{Pod: "web-5c7f-zzzzz", Node: "kwok-node-1", IP: "10.0.1.4", Terminating: true}}},
			{Context: "dev", Namespace: "shop", Service: "cart", Address: "127.1.0.6", Names: []string{"cart"}, State: api.StatePaused,
				Reason: "paused by you (kubefwd resume cart.shop to forward it again)"},
		},
	}
}

// fake is a Backend that records what the view asked.
type fake struct {
	mu    sync.Mutex
	calls []string
}

func (f *fake) record(s string) { f.mu.Lock(); f.calls = append(f.calls, s); f.mu.Unlock() }

func (f *fake) WatchStatus(ctx context.Context, _ time.Duration, fn func(api.Status) bool) error {
	<-ctx.Done()
	return nil
}
func (f *fake) EventsSince(ctx context.Context, _ int, fn func(api.Event) bool) error {
	<-ctx.Done()
	return nil
}
func (f *fake) LogStream(_ context.Context, req api.LogsRequest) (api.LogSource, io.ReadCloser, error) {
	f.record("logs " + req.Service + " " + req.Pod + " " + req.Container)
	return api.LogSource{Pod: req.Pod, Container: "app", Containers: []string{"app", "sidecar"}},
		io.NopCloser(strings.NewReader("GET / 200\nGET /healthz 200\n\x1b[31mred\x1b[0m\n")), nil
}
func (f *fake) Refresh(_ context.Context, services ...string) ([]string, error) {
	f.record("refresh " + strings.Join(services, ","))
	if len(services) == 0 {
		return []string{"all"}, nil
	}
	return services, nil
}
func (f *fake) Pause(_ context.Context, services ...string) ([]string, error) {
	f.record("pause " + strings.Join(services, ","))
	return services, nil
}
func (f *fake) Resume(_ context.Context, services ...string) ([]string, error) {
	f.record("resume " + strings.Join(services, ","))
	return services, nil
}
func (f *fake) ChangeNamespaces(_ context.Context, op string, ns []string) (api.NamespaceChange, error) {
	f.record(op + " " + strings.Join(ns, ","))
	return api.NamespaceChange{Added: []api.NamespaceRef{{Context: "dev", Namespace: "demo2"}}}, nil
}
func (f *fake) ClusterNamespaces(context.Context) ([]api.ClusterNamespaces, error) {
	f.record("list namespaces")
	return []api.ClusterNamespaces{{Context: "dev", Namespaces: []string{"default", "demo", "demo2", "kube-system", "shop"}}}, nil
}

// view is a model after a size, an attach and two statuses a second apart
// (so rates show), with the clock fixed.
func view(t *testing.T, w, h int) (Model, *fake) {
	t.Helper()
	b := &fake{}
	m := New("inst", false)
	m.now, m.loc = func() time.Time { return t0 }, time.UTC
	m = send(t, m, tea.WindowSizeMsg{Width: w, Height: h}, attachedMsg{b: b},
		statusMsg{st: fixture(1000), at: t0.Add(-time.Second)}, statusMsg{st: fixture(3048), at: t0},
		eventMsg{ev: api.Event{Time: t0.Add(-time.Minute), Type: api.EventEndpointAdded, Context: "dev", Namespace: "demo", Service: "web", Pod: "web-5c7f-fghij"}},
		eventMsg{ev: api.Event{Time: t0.Add(-30 * time.Second), Type: api.EventConnectionFailed, Context: "dev", Namespace: "demo", Service: "web", Message: "connection refused"}})
	return m, b
}

// send feeds messages through Update, running the commands they return
// (one level: what a key or an action asks of the instance).
func send(t *testing.T, m Model, msgs ...tea.Msg) Model {
	t.Helper()
	for _, msg := range msgs {
		next, cmd := m.Update(msg)
		m = next.(Model)
		m = run(t, m, cmd, 16)
	}
	return m
}

func run(t *testing.T, m Model, cmd tea.Cmd, depth int) Model {
	if cmd == nil || depth == 0 {
		return m
	}
	msg := cmd()
	switch msg := msg.(type) {
	case nil, tickMsg, tea.BackgroundColorMsg:
		return m
	case tea.BatchMsg:
		for _, c := range msg {
			m = run(t, m, c, depth-1)
		}
		return m
	}
	if strings.HasPrefix(fmt.Sprintf("%T", msg), "tea.") {
		return m // for the terminal (the clipboard, quitting), not the model
	}
	next, cmd := m.Update(msg)
	return run(t, next.(Model), cmd, depth-1)
}

func keys(t *testing.T, m Model, ks ...string) Model {
	t.Helper()
	for _, k := range ks {
		m = send(t, m, press(k))
	}
	return m
}

// press makes the key message a terminal sends for k.
func press(k string) tea.KeyPressMsg {
	switch k {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "space":
		return tea.KeyPressMsg{Code: tea.KeySpace, Text: " "}
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	case "backspace":
		return tea.KeyPressMsg{Code: tea.KeyBackspace}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "ctrl+c":
		return tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
	}
	r := []rune(k)[0]
	return tea.KeyPressMsg{Code: r, Text: k}
}

func golden(t *testing.T, name string, m Model) {
	t.Helper()
	got := ansi.Strip(m.Render()) + "\n"
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/tui -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s (go test ./internal/tui -update rewrites it):\n%s", name, path, got)
	}
	for i, l := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
		if w := ansi.StringWidth(l); w > m.width {
			t.Errorf("%s line %d is %d wide, more than the terminal's %d: %q", name, i+1, w, m.width, l)
		}
	}
}

func TestGolden(t *testing.T) {
	wide, _ := view(t, 160, 30)
	golden(t, "table-160x30", wide)
	small, _ := view(t, 80, 24)
	golden(t, "table-80x24", small)
	golden(t, "filter", keys(t, small, "/", "w", "e", "b"))
	golden(t, "sorted-by-state", keys(t, small, "s"))
	golden(t, "detail", keys(t, wide, "G", "k", "enter"))
	golden(t, "detail-log", keys(t, wide, "G", "k", "enter", "l"))
	golden(t, "browser", keys(t, small, "n"))
	golden(t, "events", keys(t, small, "e"))
	golden(t, "help", keys(t, small, "?"))
	gone := send(t, small, detachedMsg{err: errors.New("no kubefwd is running")})
	golden(t, "detached", gone)
	tiny := send(t, small, tea.WindowSizeMsg{Width: 60, Height: 20})
	golden(t, "too-small", tiny)
}

// Keys move, filter, sort and act on the selected forward through the API.
func TestKeys(t *testing.T) {
	tests := []struct {
		name   string
		keys   []string
		screen int
		sel    string // the selected forward's service (and pod)
		filter string
		calls  []string
	}{
		{name: "start", sel: "api"},
		{name: "down", keys: []string{"j", "j"}, sel: "db db-0"},
		{name: "up stops at the top", keys: []string{"k", "k"}, sel: "api"},
		{name: "last", keys: []string{"G"}, sel: "cart"},
		{name: "first", keys: []string{"G", "g"}, sel: "api"},
		{name: "filter narrows and keeps", keys: []string{"/", "c", "a", "r", "t", "enter"}, sel: "cart", filter: "cart"},
		{name: "filter edited", keys: []string{"/", "w", "e", "x", "backspace", "enter"}, sel: "web", filter: "we"},
		{name: "esc clears the filter", keys: []string{"/", "c", "a", "r", "t", "enter", "esc"}, sel: "cart"},
		{name: "details", keys: []string{"j", "enter"}, screen: screenDetail, sel: "db"},
		{name: "back from details", keys: []string{"j", "enter", "esc"}, sel: "db"},
		{name: "help and back", keys: []string{"enter", "?", "esc"}, screen: screenDetail, sel: "api"},
		{name: "events", keys: []string{"e"}, screen: screenEvents, sel: "api"},
		{name: "refresh one", keys: []string{"r"}, sel: "api", calls: []string{"refresh dev/demo/api"}},
		{name: "refresh all", keys: []string{"R"}, sel: "api", calls: []string{"refresh "}},
		{name: "pause an active one", keys: []string{"j", "p"}, sel: "db", calls: []string{"pause dev/demo/db"}},
		{name: "resume a paused one", keys: []string{"G", "p"}, sel: "cart", calls: []string{"resume dev/shop/cart"}},
		{name: "pause from details", keys: []string{"G", "k", "enter", "p"}, screen: screenDetail, sel: "web", calls: []string{"pause dev/demo/web"}},
		{name: "log of the first ready pod", keys: []string{"G", "k", "enter", "l"}, screen: screenDetail, sel: "web", calls: []string{"logs dev/demo/web web-5c7f-abcde "}},
		{name: "next pod's log", keys: []string{"G", "k", "enter", "l", "]"}, screen: screenDetail, sel: "web",
			calls: []string{"logs dev/demo/web web-5c7f-abcde ", "logs dev/demo/web web-5c7f-fghij "}},
		{name: "other container", keys: []string{"G", "k", "enter", "l", "C"}, screen: screenDetail, sel: "web",
			calls: []string{"logs dev/demo/web web-5c7f-abcde ", "logs dev/demo/web web-5c7f-abcde sidecar"}},
		{name: "namespace browser adds", keys: []string{"n", "j", "j", "space"}, screen: screenBrowser, sel: "api",
			calls: []string{"list namespaces", "add dev/demo2", "list namespaces"}},
		{name: "namespace browser removes", keys: []string{"n", "j", "space"}, screen: screenBrowser, sel: "api",
			calls: []string{"list namespaces", "remove dev/demo", "list namespaces"}},
		{name: "namespace typed", keys: []string{"n", "a", "o", "p", "s", "enter"}, screen: screenBrowser, sel: "api",
			calls: []string{"list namespaces", "add ops", "list namespaces"}},
		{name: "q goes back before it quits", keys: []string{"e", "q"}, sel: "api"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, b := view(t, 100, 30)
			m = keys(t, m, tt.keys...)
			f := m.current()
			sel := ""
			if f != nil {
				sel = strings.TrimSpace(f.Service + " " + f.Pod)
			}
			if m.screen != tt.screen || sel != tt.sel || m.filter != tt.filter {
				t.Errorf("screen %d, selected %q, filter %q; want %d, %q, %q", m.screen, sel, m.filter, tt.screen, tt.sel, tt.filter)
			}
			if !slices.Equal(b.calls, tt.calls) {
				t.Errorf("asked the instance %q, want %q", b.calls, tt.calls)
			}
		})
	}
}

// The selection follows its forward when the table changes under it.
func TestSelectionFollowsItsForward(t *testing.T) {
	m, _ := view(t, 100, 30)
	m = keys(t, m, "G", "k") // web
	st := fixture(5000)
	st.Forwards = slices.Insert(st.Forwards, 0, api.Forward{Context: "dev", Namespace: "demo", Service: "aaa", State: api.StateActive})
	m = send(t, m, statusMsg{st: st, at: t0.Add(time.Second)})
	if f := m.current(); f == nil || f.Service != "web" {
		t.Fatalf("selected %+v after a Service appeared above it, want web", f)
	}
	// Its rate: 1952 bytes more in a second.
	for _, r := range m.rows {
		if r.fwd.Service == "web" && (r.in != 1952 || r.out != 1952*20) {
			t.Errorf("web's rates %v/%v, want 1952/%d", r.in, r.out, 1952*20)
		}
	}
}

func TestQuit(t *testing.T) {
	m, _ := view(t, 100, 30)
	for _, k := range []string{"q", "ctrl+c"} {
		_, cmd := m.Update(press(k))
		if cmd == nil {
			t.Fatalf("%s: no command", k)
		}
		if _, ok := cmd().(tea.QuitMsg); !ok {
			t.Errorf("%s did not quit", k)
		}
	}
}

// What the cluster says (reasons, errors) is shown, never obeyed by the
// terminal: escape sequences in it arrive as text.
func TestHostileTextIsNotObeyed(t *testing.T) {
	m, _ := view(t, 160, 30)
	st := fixture(1000)
	st.Forwards[0].Reason = "\x1b]52;c;ZXZpbA==\a"
	st.Forwards[4].Ports[0].LastError = "\x1b[2Jcleared"
	st.Namespaces[0].Namespaces[0].Error = "\x1b[31mred"
	m = send(t, m, statusMsg{st: st, at: t0.Add(time.Second)}, resultMsg{err: errors.New("\x1b]0;title\a")})
	screens := []string{m.Render(), keys(t, m, "enter").Render(), keys(t, m, "G", "k", "enter").Render()}
	for _, out := range screens {
		for _, bad := range []string{"\x1b]52", "\x1b[2J", "\x1b]0;", "\x1b[31mred"} {
			if strings.Contains(out, bad) {
				t.Errorf("the screen passes %q to the terminal", bad)
			}
		}
	}
}

// Forwards that cannot reach their pods stand out: counted in the header,
// sorted first, their reason (the retry and its cause, the RBAC refusal) in
// the detail.
func TestGoldenUnreachableAndForbidden(t *testing.T) {
	st := fixture(1000)
	errAt := t0.Add(-2 * time.Second)
	st.Forwards = append(st.Forwards,
		api.Forward{Context: "dev", Namespace: "shop", Service: "orders", Address: "127.1.0.7", Names: []string{"orders"},
			State: api.StateUnreachable, Reason: "retrying in 2 s: pod shop/orders-1 port 8080: failed to dial 127.0.0.1:9: connection refused",
			Ports: []api.Port{{Name: "http", Port: 80, Local: 80, Endpoints: []string{"shop/orders-1:8080"}, Connections: 1, StreamErrors: 4,
				LastError: "pod shop/orders-1 port 8080: failed to dial 127.0.0.1:9: connection refused", LastErrorAt: &errAt, Failed: 1}},
			Endpoints: []api.Endpoint{{Pod: "orders-1", Node: "kwok-node-0", IP: "10.0.0.12", Ready: true}}},
		api.Forward{Context: "dev", Namespace: "shop", Service: "stock", Address: "127.1.0.8", Names: []string{"stock"},
			State: api.StateForbidden, Reason: `kubefwd cannot port-forward in namespace shop: RBAC denies pods/portforward (it needs get and create); the API server said: pods "stock-1" is forbidden: User "me" cannot get resource "pods/portforward" in API group "" in the namespace "shop"`,
			Ports:     []api.Port{{Name: "http", Port: 80, Local: 80, Endpoints: []string{"shop/stock-1:8080"}, Failed: 3}},
			Endpoints: []api.Endpoint{{Pod: "stock-1", Node: "kwok-node-1", IP: "10.0.1.12", Ready: true}}})
	b := &fake{}
	m := New("inst", false)
	m.now, m.loc = func() time.Time { return t0 }, time.UTC
	m = send(t, m, tea.WindowSizeMsg{Width: 160, Height: 30}, attachedMsg{b: b}, statusMsg{st: st, at: t0})
	golden(t, "trouble-table", m)
	golden(t, "trouble-sorted", keys(t, m, "s"))
	golden(t, "trouble-detail", keys(t, m, "G", "enter"))
}
