package tui

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/kubefwd/kubefwd/internal/api"
)

// Screens.
const (
	screenTable = iota
	screenDetail
	screenBrowser
	screenEvents
	screenLog // the instance's own log (svc --tui)
	screenHelp
)

// Bounds on what the view keeps.
const (
	maxEvents  = 500
	maxLogs    = 2000 // lines of a pod's log, and of the instance's own
	logTail    = 200  // lines of a pod's log read when it opens
	actionWait = 30 * time.Second
	// MinWidth and MinHeight are the smallest terminal the view lays out
	// for; below it says so instead of drawing a broken table.
	MinWidth, MinHeight = 80, 24
)

// Model is the live view's state.
type Model struct {
	instance string // what the header calls it
	ownLog   bool   // the instance's log is shown in a pane (svc --tui)
	now      func() time.Time
	loc      *time.Location // event times are shown in it

	width, height int
	dark          bool

	backend  Backend
	attached bool
	detached string // why, when not attached
	st       api.Status
	haveSt   bool
	stAt     time.Time
	totals   map[api.ForwardKey]totals
	rates    map[api.ForwardKey][2]float64

	screen, back int
	rows         []row
	cursor       int
	selected     api.ForwardKey // kept across updates and re-sorts
	order        int
	filter       string
	editing      bool // typing the filter

	events   []api.Event
	evScroll int // lines up from the newest
	logLines []string
	logTop   int

	// Detail: which connection string `c` copies, and the pod log.
	connIdx int
	pl      podLog

	// Browser.
	br browser

	flash   string
	flashAt time.Time
}

// podLog is the pod log open in the detail screen.
type podLog struct {
	open      bool
	id        int // of the stream, so lines of a closed one are ignored
	cancel    context.CancelFunc
	ch        <-chan string // its lines, read by one command at a time
	pod       string
	container string
	src       api.LogSource
	lines     []string
	ended     string // why it stopped
}

type browser struct {
	list    []api.ClusterNamespaces // as the instance last listed them
	items   []browserItem
	cursor  int
	err     string
	loading bool
	adding  bool // typing a namespace name
	input   string
}

type browserItem struct {
	context, namespace string
	forwarded          bool
	services           int
	note               string
}

// New returns the view's model. instance names what it is attached to;
// ownLog says whether the instance's own log has a pane.
func New(instance string, ownLog bool) Model {
	return Model{instance: instance, ownLog: ownLog, now: time.Now, loc: time.Local, dark: true, detached: "connecting…",
		totals: map[api.ForwardKey]totals{}, rates: map[api.ForwardKey][2]float64{}}
}

// Init asks the terminal for its background (light or dark) and starts
// the clock that ages "last error" and flash messages.
func (m Model) Init() tea.Cmd {
	return tea.Batch(tea.RequestBackgroundColor, tick())
}

func tick() tea.Cmd {
	return tea.Tick(time.Second, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// Update handles one message.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.clamp()
	case tea.BackgroundColorMsg:
		m.dark = msg.IsDark()
	case tickMsg:
		return m, tick()
	case attachedMsg:
		m.backend, m.attached, m.detached = msg.b, true, ""
	case detachedMsg:
		m.backend, m.attached = nil, false
		m.detached = "not attached: " + msg.err.Error()
		m.closeLog("the instance went away")
	case statusMsg:
		m.setStatus(msg.st, msg.at)
	case eventMsg:
		m.events = append(m.events, msg.ev)
		if len(m.events) > maxEvents {
			m.events = slices.Delete(m.events, 0, len(m.events)-maxEvents)
		}
	case ownLogMsg:
		m.logLines = append(m.logLines, msg.lines...)
		if len(m.logLines) > maxLogs {
			m.logLines = slices.Delete(m.logLines, 0, len(m.logLines)-maxLogs)
		}
	case logOpenedMsg:
		if msg.id != m.pl.id || !m.pl.open {
			return m, nil
		}
		m.pl.src, m.pl.container, m.pl.ch = msg.src, msg.src.Container, msg.ch
		return m, readLines(msg.id, msg.ch)
	case logLinesMsg:
		if msg.id != m.pl.id || !m.pl.open {
			return m, nil
		}
		m.pl.lines = append(m.pl.lines, msg.lines...)
		if len(m.pl.lines) > maxLogs {
			m.pl.lines = slices.Delete(m.pl.lines, 0, len(m.pl.lines)-maxLogs)
		}
		if msg.done {
			m.pl.ended = "the log ended"
			if msg.err != nil {
				m.pl.ended = msg.err.Error()
			}
			return m, nil
		}
		return m, readLines(msg.id, m.pl.ch)
	case resultMsg:
		m.flash, m.flashAt = sanitize(msg.text), m.now()
		if msg.err != nil {
			m.flash = "error: " + sanitize(msg.err.Error())
		}
	case namespacesChangedMsg:
		m.flash, m.flashAt = sanitize(msg.text), m.now()
		if msg.err != nil {
			m.flash = "error: " + sanitize(msg.err.Error())
		}
		m.br.loading = true
		return m, m.loadNamespaces() // what the instance now forwards
	case clusterNamespacesMsg:
		m.br.loading = false
		m.br.err = ""
		if msg.err != nil {
			m.br.err = sanitize(msg.err.Error())
		}
		m.br.list = msg.list
		m.br.items = browserItems(m.st, msg.list)
		for _, cn := range msg.list {
			if cn.Error != "" {
				m.br.err = sanitize(cn.Context + ": cannot list namespaces: " + cn.Error)
			}
		}
		m.br.cursor = min(m.br.cursor, max(0, len(m.br.items)-1))
	case tea.KeyPressMsg:
		return m.key(msg)
	}
	return m, nil
}

// setStatus takes a new status: rates from the counters' change since the
// last one, rows rebuilt, the selection kept on the same forward.
func (m *Model) setStatus(st api.Status, at time.Time) {
	sanitizeStatus(&st)
	dt := at.Sub(m.stAt)
	next := make(map[api.ForwardKey]totals, len(st.Forwards))
	rates := make(map[api.ForwardKey][2]float64, len(st.Forwards))
	for i := range st.Forwards {
		k := st.Forwards[i].Key()
		t := forwardTotals(&st.Forwards[i])
		next[k] = t
		if prev, ok := m.totals[k]; ok && m.haveSt {
			rates[k] = [2]float64{rate(t.in, prev.in, dt), rate(t.out, prev.out, dt)}
		}
	}
	m.st, m.stAt, m.haveSt, m.totals, m.rates = st, at, true, next, rates
	m.rebuild()
	if m.screen == screenBrowser && m.br.list != nil {
		m.br.items = browserItems(m.st, m.br.list) // what is forwarded now
		m.br.cursor = min(m.br.cursor, max(0, len(m.br.items)-1))
	}
}

// sanitizeStatus keeps what the instance reports (much of it the
// cluster's text: reasons, errors) from driving the terminal.
func sanitizeStatus(st *api.Status) {
	for i := range st.Forwards {
		f := &st.Forwards[i]
		f.Reason, f.Address = sanitize(f.Reason), sanitize(f.Address)
		for j := range f.Names {
			f.Names[j] = sanitize(f.Names[j])
		}
		for j := range f.Skipped {
			f.Skipped[j] = sanitize(f.Skipped[j])
		}
		for j := range f.Ports {
			f.Ports[j].LastError = sanitize(f.Ports[j].LastError)
		}
		for j := range f.Endpoints {
			ep := &f.Endpoints[j]
			ep.Node, ep.IP = sanitize(ep.Node), sanitize(ep.IP)
		}
	}
	for i := range st.Namespaces {
		for j := range st.Namespaces[i].Namespaces {
			ns := &st.Namespaces[i].Namespaces[j]
			ns.Error = sanitize(ns.Error)
		}
	}
}

// grouped: rows are grouped under their namespace when there are several.
func (m *Model) grouped() bool {
	if len(m.st.Contexts) > 1 {
		return false
	}
	seen := ""
	for i := range m.st.Forwards {
		ns := m.st.Forwards[i].Namespace
		if seen != "" && ns != seen {
			return true
		}
		seen = ns
	}
	return false
}

func (m *Model) rebuild() {
	m.rows = buildRows(&m.st, m.rates, m.filter, m.order, m.grouped())
	m.cursor = 0
	for i := range m.rows {
		if m.rows[i].key == m.selected {
			m.cursor = i
			break
		}
	}
	m.clamp()
}

// clamp keeps the cursor on a row and the selection on the cursor.
func (m *Model) clamp() {
	m.cursor = max(0, min(m.cursor, len(m.rows)-1))
	if len(m.rows) > 0 {
		m.selected = m.rows[m.cursor].key
	}
}

func (m *Model) current() *api.Forward {
	if len(m.rows) == 0 {
		return nil
	}
	// The detail screen shows the selected forward even if a filter or a
	// change took it off the table; it is gone only when the instance says.
	for i := range m.st.Forwards {
		if m.st.Forwards[i].Key() == m.selected {
			return &m.st.Forwards[i]
		}
	}
	return nil
}

// service is how actions name the selected forward to the API.
func service(f *api.Forward) string {
	return f.Context + "/" + f.Namespace + "/" + f.Service
}

func (m Model) key(k tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	s := k.String()
	if s == "ctrl+c" {
		return m, m.quit()
	}
	if m.editing {
		return m.editFilter(k), nil
	}
	if m.screen == screenBrowser && m.br.adding {
		return m.editNamespace(k)
	}
	switch s {
	case "q":
		if m.screen == screenTable {
			return m, m.quit()
		}
		m.leave()
		return m, nil
	case "esc":
		if m.screen == screenTable && m.filter != "" {
			m.filter = ""
			m.rebuild()
			return m, nil
		}
		m.leave()
		return m, nil
	case "?":
		if m.screen != screenHelp {
			m.back, m.screen = m.screen, screenHelp
		}
		return m, nil
	}
	switch m.screen {
	case screenTable:
		return m.tableKey(s)
	case screenDetail:
		return m.detailKey(s)
	case screenBrowser:
		return m.browserKey(s)
	case screenEvents:
		m.evScroll = scroll(s, m.evScroll, len(m.events), m.bodyHeight())
	case screenLog:
		m.logTop = scroll(s, m.logTop, len(m.logLines), m.bodyHeight())
	}
	return m, nil
}

// scroll moves a position counted in lines up from the newest.
func scroll(key string, pos, n, page int) int {
	switch key {
	case "k", "up":
		pos++
	case "j", "down":
		pos--
	case "pgup", "ctrl+b":
		pos += page
	case "pgdown", "ctrl+f":
		pos -= page
	case "g", "home":
		pos = n
	case "G", "end":
		pos = 0
	}
	return max(0, min(pos, n-page))
}

func (m *Model) leave() {
	switch m.screen {
	case screenHelp:
		m.screen = m.back
	case screenDetail:
		m.closeLog("")
		m.screen = screenTable
	default:
		m.screen = screenTable
	}
}

func (m Model) quit() tea.Cmd {
	m.closeLog("")
	return tea.Quit
}

func (m Model) tableKey(s string) (tea.Model, tea.Cmd) {
	page := m.tableHeight()
	switch s {
	case "j", "down":
		m.cursor++
	case "k", "up":
		m.cursor--
	case "g", "home":
		m.cursor = 0
	case "G", "end":
		m.cursor = len(m.rows) - 1
	case "pgdown", "ctrl+f", "space":
		m.cursor += page
	case "pgup", "ctrl+b":
		m.cursor -= page
	case "/":
		m.editing = true
	case "s":
		m.order = (m.order + 1) % sortOrders
		m.rebuild()
		m.flash, m.flashAt = "sorted by "+sortNames[m.order], m.now()
	case "enter":
		if m.current() != nil {
			m.screen, m.connIdx = screenDetail, 0
		}
	case "e":
		m.screen, m.evScroll = screenEvents, 0
	case "L":
		if m.ownLog {
			m.screen, m.logTop = screenLog, 0
		}
	case "n":
		m.screen = screenBrowser
		m.br = browser{loading: true}
		return m, m.loadNamespaces()
	case "r":
		if f := m.current(); f != nil {
			return m, m.act("refreshed", func(ctx context.Context, b Backend) ([]string, error) { return b.Refresh(ctx, service(f)) })
		}
	case "R":
		return m, m.act("refreshed", func(ctx context.Context, b Backend) ([]string, error) { return b.Refresh(ctx) })
	case "p":
		if f := m.current(); f != nil {
			return m, m.togglePause(f)
		}
	}
	m.clamp()
	return m, nil
}

func (m Model) togglePause(f *api.Forward) tea.Cmd {
	svc := service(f)
	if f.State == api.StatePaused {
		return m.act("resumed", func(ctx context.Context, b Backend) ([]string, error) { return b.Resume(ctx, svc) })
	}
	return m.act("paused", func(ctx context.Context, b Backend) ([]string, error) { return b.Pause(ctx, svc) })
}

// editFilter is the filter's line editor: typing narrows the table at
// once, Enter keeps the filter, Esc clears it. (A hand-made one: the
// filter needs no cursor movement, and its text renders the same in every
// frame, which a blinking input would not.)
func (m Model) editFilter(k tea.KeyPressMsg) Model {
	switch k.String() {
	case "enter":
		m.editing = false
	case "esc":
		m.editing, m.filter = false, ""
	case "backspace":
		if r := []rune(m.filter); len(r) > 0 {
			m.filter = string(r[:len(r)-1])
		}
	case "ctrl+u":
		m.filter = ""
	default:
		if k.Text != "" && !strings.ContainsAny(k.Text, "\x00\r\n\t") {
			m.filter += k.Text
		}
	}
	m.rebuild()
	return m
}

func (m Model) detailKey(s string) (tea.Model, tea.Cmd) {
	f := m.current()
	if f == nil {
		return m, nil
	}
	conns := connStrings(f)
	switch s {
	case "tab", "down", "j":
		if len(conns) > 0 {
			m.connIdx = (m.connIdx + 1) % len(conns)
		}
	case "shift+tab", "up", "k":
		if len(conns) > 0 {
			m.connIdx = (m.connIdx - 1 + len(conns)) % len(conns)
		}
	case "c", "y":
		if m.connIdx < len(conns) {
			m.flash, m.flashAt = "copied "+conns[m.connIdx]+" (OSC 52)", m.now()
			return m, tea.SetClipboard(conns[m.connIdx])
		}
	case "l":
		if m.pl.open {
			m.closeLog("")
			m.pl = podLog{id: m.pl.id}
			return m, nil
		}
		return m, m.openLog(f, firstReady(f), "")
	case "]", "[":
		if !m.pl.open {
			return m, nil
		}
		pods := readyPods(f)
		if len(pods) < 2 {
			return m, nil
		}
		i := slices.Index(pods, m.pl.pod)
		if s == "]" {
			i = (i + 1) % len(pods)
		} else {
			i = (i - 1 + len(pods)) % len(pods)
		}
		return m, m.openLog(f, pods[i], "")
	case "C":
		if !m.pl.open || len(m.pl.src.Containers) < 2 {
			return m, nil
		}
		cs := m.pl.src.Containers
		next := cs[(slices.Index(cs, m.pl.container)+1)%len(cs)]
		return m, m.openLog(f, m.pl.pod, next)
	case "r":
		return m, m.act("refreshed", func(ctx context.Context, b Backend) ([]string, error) { return b.Refresh(ctx, service(f)) })
	case "p":
		return m, m.togglePause(f)
	}
	return m, nil
}

func readyPods(f *api.Forward) []string {
	var pods []string
	for _, ep := range f.Endpoints {
		if ep.Ready {
			pods = append(pods, ep.Pod)
		}
	}
	return pods
}

func firstReady(f *api.Forward) string {
	if pods := readyPods(f); len(pods) > 0 {
		return pods[0]
	}
	return ""
}

// openLog starts following a pod's log (its last lines first), replacing
// the one open.
func (m *Model) openLog(f *api.Forward, pod, container string) tea.Cmd {
	m.closeLog("")
	b := m.backend
	if b == nil {
		m.flash, m.flashAt = errNotAttached.Error(), m.now()
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.pl = podLog{open: true, id: m.pl.id + 1, cancel: cancel, pod: pod, container: container}
	id := m.pl.id
	req := api.LogsRequest{Service: service(f), Pod: pod, Container: container, Tail: logTail, Follow: true}
	return func() tea.Msg {
		src, body, err := b.LogStream(ctx, req)
		if err != nil {
			return logLinesMsg{id: id, done: true, err: err}
		}
		ch := make(chan string, 256)
		// Owned by the log's context: closing the log cancels the request,
		// which ends the read, which ends this goroutine.
		go func() {
			defer close(ch)
			defer body.Close()
			sc := bufio.NewScanner(body)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				select {
				case ch <- sc.Text():
				case <-ctx.Done():
					return
				}
			}
		}()
		return logOpenedMsg{id: id, src: src, ch: ch}
	}
}

// closeLog ends the open pod log, if any.
func (m *Model) closeLog(why string) {
	if m.pl.cancel != nil {
		m.pl.cancel()
		m.pl.cancel = nil
	}
	if m.pl.open && why != "" {
		m.pl.ended = why
	}
}

// readLines waits for the next lines of a pod log and returns them at
// once, up to what is ready, so a chatty pod costs one frame per batch.
func readLines(id int, ch <-chan string) tea.Cmd {
	if ch == nil {
		return nil
	}
	return func() tea.Msg {
		line, ok := <-ch
		if !ok {
			return logLinesMsg{id: id, done: true}
		}
		lines := []string{line}
		for len(lines) < 500 {
			select {
			case line, ok := <-ch:
				if !ok {
					return logLinesMsg{id: id, lines: lines, done: true}
				}
				lines = append(lines, line)
				continue
			default:
			}
			break
		}
		return logLinesMsg{id: id, lines: lines}
	}
}

// errNotAttached is what an action says when no instance answers.
var errNotAttached = errors.New("not attached to an instance")

// call runs fn against the attached instance, bounded by actionWait, in a
// command; without an instance the command answers fail(errNotAttached).
func (m Model) call(fail func(error) tea.Msg, fn func(context.Context, Backend) tea.Msg) tea.Cmd {
	b := m.backend
	if b == nil {
		return func() tea.Msg { return fail(errNotAttached) }
	}
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), actionWait)
		defer cancel()
		return fn(ctx, b)
	}
}

func failResult(err error) tea.Msg { return resultMsg{err: err} }

// act runs an action against the instance and reports what it did.
func (m Model) act(verb string, do func(context.Context, Backend) ([]string, error)) tea.Cmd {
	return m.call(failResult, func(ctx context.Context, b Backend) tea.Msg {
		done, err := do(ctx, b)
		return resultMsg{text: verb + " " + strings.Join(done, ", "), err: err}
	})
}

func (m Model) loadNamespaces() tea.Cmd {
	return m.call(func(err error) tea.Msg { return clusterNamespacesMsg{err: err} }, func(ctx context.Context, b Backend) tea.Msg {
		list, err := b.ClusterNamespaces(ctx)
		return clusterNamespacesMsg{list: list, err: err}
	})
}

// browserItems merges the cluster's namespaces with the forwarded ones.
func browserItems(st api.Status, list []api.ClusterNamespaces) []browserItem {
	var items []browserItem
	forwarded := map[[2]string]api.NamespaceState{}
	all := map[string]bool{}
	for _, cn := range st.Namespaces {
		all[cn.Context] = cn.All
		for _, ns := range cn.Namespaces {
			forwarded[[2]string{cn.Context, ns.Namespace}] = ns
		}
	}
	seen := map[[2]string]bool{}
	for _, cn := range list {
		for _, ns := range cn.Namespaces {
			k := [2]string{cn.Context, ns}
			seen[k] = true
			fs, fwd := forwarded[k]
			it := browserItem{context: cn.Context, namespace: ns, forwarded: fwd || all[cn.Context], services: fs.Services}
			if all[cn.Context] {
				it.note = "all namespaces (-A)"
			}
			items = append(items, it)
		}
	}
	// Forwarded namespaces the list did not show (it failed, or the
	// namespace is not created yet) stay visible, so they can be removed.
	for k, fs := range forwarded {
		if !seen[k] && k[1] != "" {
			items = append(items, browserItem{context: k[0], namespace: k[1], forwarded: true, services: fs.Services, note: "not listed by the cluster"})
		}
	}
	slices.SortFunc(items, func(a, b browserItem) int {
		return strings.Compare(a.context+"/"+a.namespace, b.context+"/"+b.namespace)
	})
	return items
}

func (m Model) browserKey(s string) (tea.Model, tea.Cmd) {
	switch s {
	case "j", "down":
		m.br.cursor = min(m.br.cursor+1, len(m.br.items)-1)
	case "k", "up":
		m.br.cursor = max(m.br.cursor-1, 0)
	case "g", "home":
		m.br.cursor = 0
	case "G", "end":
		m.br.cursor = len(m.br.items) - 1
	case "a":
		m.br.adding, m.br.input = true, ""
	case "space", "enter":
		if m.br.cursor < 0 || m.br.cursor >= len(m.br.items) {
			return m, nil
		}
		it := m.br.items[m.br.cursor]
		if it.note == "all namespaces (-A)" {
			m.flash, m.flashAt = it.context+" forwards every namespace (-A)", m.now()
			return m, nil
		}
		op, verb := api.NamespacesAdd, "added"
		if it.forwarded {
			op, verb = api.NamespacesRemove, "removed"
		}
		m.br.items[m.br.cursor].forwarded = !it.forwarded
		return m, m.changeNamespaces(op, verb, it.context+"/"+it.namespace)
	case "ctrl+r", "R":
		m.br.loading = true
		return m, m.loadNamespaces()
	}
	m.br.cursor = max(0, m.br.cursor)
	return m, nil
}

// editNamespace types a namespace to add, for one the list cannot show.
func (m Model) editNamespace(k tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	switch k.String() {
	case "esc":
		m.br.adding = false
	case "enter":
		m.br.adding = false
		if ns := strings.TrimSpace(m.br.input); ns != "" {
			return m, m.changeNamespaces(api.NamespacesAdd, "added", ns)
		}
	case "backspace":
		if r := []rune(m.br.input); len(r) > 0 {
			m.br.input = string(r[:len(r)-1])
		}
	default:
		if k.Text != "" && !strings.ContainsAny(k.Text, "\x00\r\n\t ") {
			m.br.input += k.Text
		}
	}
	return m, nil
}

func (m Model) changeNamespaces(op, verb, ns string) tea.Cmd {
	return m.call(failResult, func(ctx context.Context, b Backend) tea.Msg {
		change, err := b.ChangeNamespaces(ctx, op, []string{ns})
		if err != nil {
			return namespacesChangedMsg{resultMsg{err: err}}
		}
		var done []string
		for _, r := range append(change.Added, change.Removed...) {
			done = append(done, r.String())
		}
		text := verb + " " + strings.Join(done, ", ")
		if len(done) == 0 {
			text = strings.Join(change.Notes, "; ")
		}
		return namespacesChangedMsg{resultMsg{text: text}}
	})
}

func (m Model) bodyHeight() int { return max(1, m.height-4) }

// tableHeight is how many table lines fit: the screen less header (2),
// column titles (1), footer (1) and, with the instance's own log, its pane.
func (m Model) tableHeight() int {
	return max(1, m.height-4-m.logPaneHeight())
}

func (m Model) logPaneHeight() int {
	if !m.ownLog || m.height < MinHeight {
		return 0
	}
	return 5 // a rule and four lines
}

// String is for debugging.
func (m Model) String() string {
	return fmt.Sprintf("tui.Model{screen %d, %d rows, cursor %d}", m.screen, len(m.rows), m.cursor)
}
