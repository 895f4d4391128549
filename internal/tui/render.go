package tui

import (
	"fmt"
	"image/color"
	"slices"
	"strconv"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/kubefwd/kubefwd/internal/api"
)

// styles are the view's colours for a light or a dark terminal. Colour is
// never the only signal: every state is also written out.
type styles struct {
	title, dim, header, cursor, group, key, warn, bad, good, paused lipgloss.Style
}

func newStyles(dark bool) styles {
	ld := lipgloss.LightDark(dark)
	c := func(light, dark string) color.Color { return ld(lipgloss.Color(light), lipgloss.Color(dark)) }
	return styles{
		title:  lipgloss.NewStyle().Bold(true).Foreground(c("#005f87", "#5fafff")),
		dim:    lipgloss.NewStyle().Foreground(c("#6c6c6c", "#8a8a8a")),
		header: lipgloss.NewStyle().Bold(true),
		cursor: lipgloss.NewStyle().Reverse(true),
		group:  lipgloss.NewStyle().Bold(true).Foreground(c("#5f5f00", "#d7d787")),
		key:    lipgloss.NewStyle().Bold(true).Foreground(c("#005f87", "#5fafff")),
		warn:   lipgloss.NewStyle().Foreground(c("#875f00", "#ffd75f")),
		bad:    lipgloss.NewStyle().Foreground(c("#af0000", "#ff5f5f")),
		good:   lipgloss.NewStyle().Foreground(c("#005f00", "#87d787")),
		paused: lipgloss.NewStyle().Foreground(c("#5f00af", "#af87ff")),
	}
}

// View draws the current screen.
func (m Model) View() tea.View {
	v := tea.NewView(m.Render())
	v.AltScreen = true
	v.WindowTitle = "kubefwd"
	if m.instance != "" {
		v.WindowTitle += " · " + m.instance
	}
	return v
}

// Render is the screen as text (ANSI styled; plain where the terminal has
// no colour).
func (m Model) Render() string {
	if m.width == 0 {
		return "starting…"
	}
	if m.width < MinWidth || m.height < MinHeight {
		return ansi.Wordwrap(fmt.Sprintf("kubefwd needs a terminal of at least %d×%d; this one is %d×%d.", MinWidth, MinHeight, m.width, m.height), m.width, "")
	}
	st := newStyles(m.dark)
	var body []string
	switch m.screen {
	case screenDetail:
		body = m.renderDetail(st)
	case screenBrowser:
		body = m.renderBrowser(st)
	case screenEvents:
		body = m.renderEvents(st)
	case screenLog:
		body = m.renderOwnLog(st, m.bodyHeight())
	case screenHelp:
		body = m.renderHelp(st)
	default:
		body = m.renderTable(st)
		if h := m.logPaneHeight(); h > 0 {
			for len(body) < m.tableHeight()+1 { // the pane sits at the bottom
				body = append(body, "")
			}
			body = append(body, st.dim.Render(rule("kubefwd log (L: full screen)", m.width)))
			body = append(body, m.renderOwnLog(st, h-1)...)
		}
	}
	lines := append(m.renderHeader(st), body...)
	for len(lines) < m.height-1 {
		lines = append(lines, "")
	}
	lines = append(lines[:m.height-1], m.renderFooter(st))
	for i, l := range lines {
		lines[i] = ansi.Truncate(l, m.width, "…")
	}
	return strings.Join(lines, "\n")
}

func rule(title string, width int) string {
	s := "── " + title + " "
	return s + strings.Repeat("─", max(0, width-ansi.StringWidth(s)))
}

func (m Model) renderHeader(st styles) []string {
	title := st.title.Render("kubefwd")
	if m.st.Version != "" {
		title += st.dim.Render(" " + m.st.Version)
	}
	if m.instance != "" {
		title += st.dim.Render(" · ") + m.instance
	}
	if len(m.st.Contexts) > 0 {
		title += st.dim.Render(" · context ") + strings.Join(m.st.Contexts, ", ")
	}
	var nss []string
	for _, cn := range m.st.Namespaces {
		if cn.All {
			nss = append(nss, "all")
			continue
		}
		for _, ns := range cn.Namespaces {
			nss = append(nss, ns.Namespace)
		}
	}
	if len(nss) > 0 {
		title += st.dim.Render(" · namespaces ") + strings.Join(nss, ", ")
	}
	if !m.attached {
		return []string{title, st.bad.Render("⚠ " + m.detached + " — retrying every second")}
	}
	counts := map[string]int{}
	for i := range m.st.Forwards {
		counts[m.st.Forwards[i].State]++
	}
	parts := []string{st.good.Render(fmt.Sprintf("%d active", counts[api.StateActive]))}
	if n := counts[api.StateWaiting]; n > 0 {
		parts = append(parts, st.warn.Render(fmt.Sprintf("%d waiting", n)))
	}
	if n := counts[api.StateUnreachable]; n > 0 {
		parts = append(parts, st.bad.Render(fmt.Sprintf("%d unreachable", n)))
	}
	if n := counts[api.StateForbidden]; n > 0 {
		parts = append(parts, st.bad.Render(fmt.Sprintf("%d forbidden", n)))
	}
	if n := counts[api.StateNotForwarded]; n > 0 {
		parts = append(parts, st.bad.Render(fmt.Sprintf("%d not forwarded", n)))
	}
	if n := counts[api.StatePaused]; n > 0 {
		parts = append(parts, st.paused.Render(fmt.Sprintf("%d paused", n)))
	}
	open, watchErrs := 0, int64(0)
	for _, t := range m.st.Tunnels {
		open += t.Open
	}
	for _, a := range m.st.API {
		watchErrs += a.WatchErrors
	}
	parts = append(parts, fmt.Sprintf("%d tunnels", open))
	health := st.good.Render("API ok")
	for _, cn := range m.st.Namespaces {
		for _, ns := range cn.Namespaces {
			if ns.Error != "" {
				health = st.bad.Render("API: " + ns.Namespace + ": " + ns.Error)
			}
		}
	}
	if watchErrs > 0 && health == st.good.Render("API ok") {
		health = st.warn.Render(fmt.Sprintf("API ok (%d watch errors retried)", watchErrs))
	}
	parts = append(parts, health)
	if m.filter != "" || m.editing {
		parts = append(parts, fmt.Sprintf("%d shown", len(m.rows)))
	}
	return []string{title, strings.Join(parts, st.dim.Render(" · "))}
}

// column is one table column: its title, width (0: shares what is left)
// and whether it is shown at this width.
type column struct {
	title string
	width int
	min   int // the width from which it is shown
	right bool
	cell  func(m *Model, r *row) string
}

func (m Model) columns() []column {
	all := []column{
		{title: "SERVICE", cell: func(_ *Model, r *row) string { return r.name }},
		{title: "ADDRESS", width: 15, cell: func(_ *Model, r *row) string { return r.fwd.Address }},
		{title: "PORTS", width: 11, cell: func(_ *Model, r *row) string { return r.ports }},
		{title: "STATE", width: 13, cell: func(_ *Model, r *row) string { return r.state }},
		{title: "READY", width: 5, right: true, cell: func(_ *Model, r *row) string { return r.ready }},
		{title: "CONN", width: 4, right: true, cell: func(_ *Model, r *row) string { return strconv.FormatInt(r.conns, 10) }},
		{title: "IN/s", width: 10, min: 100, right: true, cell: func(_ *Model, r *row) string { return humanRate(r.in) }},
		{title: "OUT/s", width: 10, min: 100, right: true, cell: func(_ *Model, r *row) string { return humanRate(r.out) }},
		{title: "PODS", width: 22, min: 130, cell: func(_ *Model, r *row) string { return r.pods }},
		{title: "LAST ERROR", width: 0, min: 150, cell: func(m *Model, r *row) string {
			if r.lastErr == "" {
				return ""
			}
			return ago(m.now(), r.lastErrAt) + " ago: " + r.lastErr
		}},
	}
	var cols []column
	for _, c := range all {
		if m.width >= c.min {
			cols = append(cols, c)
		}
	}
	// Flexible columns share what the fixed ones leave, the first (the
	// name) at least 20.
	fixed, flex := 2, 0 // the cursor's marker
	for _, c := range cols {
		fixed += c.width + 1
		if c.width == 0 {
			flex++
		}
	}
	left := max(20*flex, m.width-fixed)
	for i := range cols {
		if cols[i].width == 0 {
			cols[i].width = left / flex
		}
	}
	return cols
}

func pad(s string, w int, right bool) string {
	s = ansi.Truncate(s, w, "…")
	gap := strings.Repeat(" ", max(0, w-ansi.StringWidth(s)))
	if right {
		return gap + s
	}
	return s + gap
}

func (m Model) renderTable(st styles) []string {
	cols := m.columns()
	var titles []string
	for _, c := range cols {
		t := c.title
		if c.title == strings.ToUpper(sortNames[m.order]) || (m.order == sortConns && c.title == "CONN") ||
			(m.order == sortTraffic && c.title == "IN/s") || (m.order == sortErrors && c.title == "LAST ERROR") {
			t += "↓"
		}
		titles = append(titles, pad(t, c.width, c.right))
	}
	lines := []string{st.header.Render("  " + strings.Join(titles, " "))}
	height := m.tableHeight()
	if !m.haveSt {
		return append(lines, st.dim.Render("  waiting for the instance's status…"))
	}
	if len(m.rows) == 0 {
		if m.filter != "" {
			return append(lines, st.dim.Render("  nothing matches /"+m.filter))
		}
		return append(lines, st.dim.Render("  no Services in the forwarded namespaces yet"))
	}
	// The lines: group titles and rows; the window keeps the cursor in view.
	type line struct {
		group string
		row   int
	}
	var all []line
	cursorLine := 0
	grouped := m.grouped()
	for i := range m.rows {
		if grouped && (i == 0 || m.rows[i].fwd.Namespace != m.rows[i-1].fwd.Namespace) {
			all = append(all, line{group: m.rows[i].fwd.Namespace, row: -1})
		}
		if i == m.cursor {
			cursorLine = len(all)
		}
		all = append(all, line{row: i})
	}
	top := 0
	if cursorLine >= height {
		top = cursorLine - height + 1
	}
	for _, l := range all[top:min(len(all), top+height)] {
		if l.row < 0 {
			lines = append(lines, st.group.Render(rule(l.group, m.width)))
			continue
		}
		r := &m.rows[l.row]
		var cells []string
		for _, c := range cols {
			cell := pad(c.cell(&m, r), c.width, c.right)
			if c.title == "STATE" && l.row != m.cursor {
				cell = stateStyle(st, r.fwd.State).Render(cell)
			}
			cells = append(cells, cell)
		}
		text := "  " + strings.Join(cells, " ")
		if l.row == m.cursor {
			// A marker as well as the highlight: it shows without colour.
			text = st.cursor.Render(pad("▸ "+strings.Join(cells, " "), m.width, false))
		}
		lines = append(lines, text)
	}
	return lines
}

func stateStyle(st styles, state string) lipgloss.Style {
	switch state {
	case api.StateActive:
		return st.good
	case api.StateWaiting:
		return st.warn
	case api.StatePaused:
		return st.paused
	}
	return st.bad
}

func (m Model) renderDetail(st styles) []string {
	f := m.current()
	if f == nil {
		return []string{"", st.dim.Render("  this Service is no longer forwarded (Esc: back)")}
	}
	title := f.Context + "/" + f.Namespace + "/" + f.Service
	if f.Pod != "" {
		title += " › " + f.Pod
	}
	state := stateStyle(st, f.State).Render(f.State)
	if f.Reason != "" {
		state += ": " + f.Reason
	}
	lines := []string{st.group.Render(rule(title, m.width)), "  state      " + state}
	if f.Address != "" {
		lines = append(lines, "  address    "+f.Address)
	}
	if len(f.Names) > 0 {
		// Every name, wrapped: the long ones are what people copy.
		wrapped := ansi.Wordwrap(strings.Join(f.Names, ", "), max(20, m.width-13), "")
		for i, l := range strings.Split(wrapped, "\n") {
			label := "             "
			if i == 0 {
				label = "  names      "
			}
			lines = append(lines, label+l)
		}
	}
	conns := connStrings(f)
	for i, c := range conns {
		label := "             "
		if i == 0 {
			label = "  connect    "
		}
		if i == m.connIdx {
			c = st.cursor.Render(c) + st.dim.Render("  c: copy")
		}
		lines = append(lines, label+c)
	}
	for _, p := range f.Ports {
		s := fmt.Sprintf("  port %-5d conn %d · in %s · out %s · failed %d · retried %d",
			p.Port, p.Connections, humanBytes(float64(p.BytesIn)), humanBytes(float64(p.BytesOut)), p.Failed, p.Retried)
		if p.Name != "" {
			s = strings.Replace(s, fmt.Sprintf("port %-5d", p.Port), fmt.Sprintf("port %d/%s", p.Port, p.Name), 1)
		}
		if p.Protocol == "UDP" {
			s = strings.Replace(s, " conn ", " (UDP) flows ", 1)
		}
		lines = append(lines, s)
		if p.Relay != "" {
			lines = append(lines, st.dim.Render("             "+p.Relay))
		}
		if p.LastError != "" && p.LastErrorAt != nil {
			lines = append(lines, st.bad.Render("             last error "+ago(m.now(), *p.LastErrorAt)+" ago: "+p.LastError))
		}
	}
	for _, s := range f.Skipped {
		lines = append(lines, st.warn.Render("  skipped    "+s))
	}
	if len(f.Endpoints) > 0 {
		lines = append(lines, st.header.Render(fmt.Sprintf("  %-34s %-16s %-15s %s", "POD", "NODE", "IP", "READY")))
		for _, ep := range f.Endpoints {
			ready := st.good.Render("ready")
			switch {
			case ep.Terminating:
				ready = st.warn.Render("terminating")
			case !ep.Ready:
				ready = st.bad.Render("not ready")
			}
			lines = append(lines, fmt.Sprintf("  %-34s %-16s %-15s %s", ep.Pod, ep.Node, ep.IP, ready))
		}
	} else if f.State != api.StateNotForwarded {
		lines = append(lines, st.warn.Render("  no pods back this Service"))
	}
	// Recent events of this Service, newest last.
	var evs []string
	for _, ev := range m.events {
		if ev.Context == f.Context && ev.Namespace == f.Namespace && ev.Service == f.Service {
			evs = append(evs, eventLine(ev, m.loc))
		}
	}
	if len(evs) > 0 {
		lines = append(lines, st.header.Render("  recent events"))
		for _, e := range evs[max(0, len(evs)-4):] {
			lines = append(lines, "  "+e)
		}
	}
	room := m.height - 3 - len(lines)
	if !m.pl.open {
		return append(lines, st.dim.Render("  l: follow a pod's log"))
	}
	head := "log of " + m.pl.pod
	if m.pl.container != "" {
		head += "/" + m.pl.container
	}
	if len(m.pl.src.Containers) > 1 {
		head += " (containers: " + strings.Join(m.pl.src.Containers, ", ") + "; C: next)"
	}
	if m.pl.ended != "" {
		head += " — " + m.pl.ended
	} else {
		head += " — following"
	}
	lines = append(lines, st.dim.Render(rule(head, m.width)))
	if room < 2 {
		return lines
	}
	logs := m.pl.lines
	if len(logs) > room-1 {
		logs = logs[len(logs)-(room-1):]
	}
	for _, l := range logs {
		lines = append(lines, "  "+sanitize(l))
	}
	return lines
}

// sanitize keeps a log line from driving the terminal: escape sequences a
// pod writes are shown, not obeyed.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '�'
		}
		return r
	}, strings.ReplaceAll(s, "\t", "    "))
}

func eventLine(ev api.Event, loc *time.Location) string {
	s := ev.Time.In(loc).Format("15:04:05") + " " + ev.Type
	what := ev.Namespace + "/" + ev.Service
	if ev.Service == "" {
		what = ev.Namespace
	}
	if what != "/" && what != "" {
		s += " " + what
	}
	if ev.Pod != "" {
		s += " pod " + ev.Pod
	}
	if ev.State != "" {
		s += " → " + ev.State
	}
	for _, t := range []string{ev.Reason, ev.Message} {
		if t != "" {
			s += ": " + t
		}
	}
	return sanitize(s)
}

func (m Model) renderEvents(st styles) []string {
	lines := []string{st.group.Render(rule(fmt.Sprintf("events (%d kept; j/k scroll)", len(m.events)), m.width))}
	h := m.bodyHeight() - 1
	end := len(m.events) - m.evScroll
	for _, ev := range m.events[max(0, end-h):max(0, end)] {
		l := eventLine(ev, m.loc)
		switch ev.Type {
		case api.EventConnectionFailed, api.EventWatchError, api.EventHostsError, api.EventDropped:
			l = st.bad.Render(l)
		case api.EventEndpointRemoved, api.EventForwardRemoved:
			l = st.warn.Render(l)
		}
		lines = append(lines, l)
	}
	if len(m.events) == 0 {
		lines = append(lines, st.dim.Render("  no events yet"))
	}
	return lines
}

func (m Model) renderOwnLog(st styles, h int) []string {
	var lines []string
	if m.screen == screenLog {
		lines = append(lines, st.group.Render(rule("kubefwd log (j/k scroll)", m.width)))
		h--
	}
	end := len(m.logLines) - m.logTop
	for _, l := range m.logLines[max(0, end-h):max(0, end)] {
		lines = append(lines, sanitize(l))
	}
	return lines
}

func (m Model) renderBrowser(st styles) []string {
	lines := []string{st.group.Render(rule("namespaces (space: forward or stop · a: add by name · R: reload)", m.width))}
	if m.br.loading && len(m.br.items) == 0 {
		return append(lines, st.dim.Render("  listing the cluster's namespaces…"))
	}
	if m.br.err != "" {
		lines = append(lines, st.bad.Render("  "+m.br.err))
	}
	multi := len(m.st.Contexts) > 1
	h := m.bodyHeight() - len(lines) - 1
	top := max(0, m.br.cursor-h+1)
	for i := top; i < len(m.br.items) && i < top+h; i++ {
		it := m.br.items[i]
		box := "[ ]"
		if it.forwarded {
			box = "[x]"
		}
		name := it.namespace
		if multi {
			name = it.context + "/" + it.namespace
		}
		text := fmt.Sprintf("  %s %-40s", box, name)
		if it.forwarded && it.services > 0 {
			text += fmt.Sprintf(" %d Service%s", it.services, map[bool]string{true: "s"}[it.services > 1])
		}
		if it.note != "" {
			text += " (" + it.note + ")"
		}
		if i == m.br.cursor {
			text = st.cursor.Render(pad("▸"+text[1:], m.width, false))
		}
		lines = append(lines, text)
	}
	if m.br.adding {
		lines = append(lines, "  add namespace: "+m.br.input+"█")
	}
	return lines
}

// keys are the bindings, as help lists them.
var helpKeys = [][2]string{
	{"j/k ↓/↑", "move"},
	{"g/G", "first / last"},
	{"PgUp/PgDn", "page"},
	{"/", "filter (Enter keeps it, Esc clears it)"},
	{"s", "sort: name, state, connections, traffic, last error"},
	{"Enter", "details: names, connection strings, pods, events, log"},
	{"c or y", "copy the selected connection string (OSC 52, works over ssh)"},
	{"Tab", "next connection string"},
	{"l", "follow a pod's log; [ ] other pod, C other container"},
	{"r / R", "refresh the selected Service's tunnels / all tunnels"},
	{"p", "stop forwarding the selected Service, or resume it"},
	{"n", "namespaces: forward or stop one live"},
	{"e", "events"},
	{"L", "kubefwd's own log (kubefwd svc --tui)"},
	{"?", "this help"},
	{"Esc / q", "back; q on the table quits"},
}

func (m Model) renderHelp(st styles) []string {
	lines := []string{st.group.Render(rule("keys", m.width))}
	for _, k := range helpKeys {
		lines = append(lines, "  "+st.key.Render(pad(k[0], 12, false))+" "+k[1])
	}
	lines = append(lines, "", st.dim.Render("  The view steers the instance through its control API; quitting a `kubefwd ui` leaves it running."))
	return lines
}

func (m Model) renderFooter(st styles) string {
	if m.editing {
		return "/" + m.filter + "█" + st.dim.Render("  (Enter: keep · Esc: clear)")
	}
	if m.flash != "" && m.now().Sub(m.flashAt) < 5e9 {
		return st.warn.Render(m.flash)
	}
	var keys [][2]string
	switch m.screen {
	case screenTable:
		keys = [][2]string{{"enter", "details"}, {"/", "filter"}, {"s", "sort"}, {"r", "refresh"}, {"p", "pause"}, {"n", "namespaces"}, {"e", "events"}}
		if m.ownLog {
			keys = append(keys, [2]string{"L", "log"})
		}
		keys = append(keys, [2]string{"?", "help"}, [2]string{"q", "quit"})
	case screenDetail:
		keys = [][2]string{{"c", "copy"}, {"tab", "next"}, {"l", "log"}, {"r", "refresh"}, {"p", "pause"}, {"esc", "back"}}
	case screenBrowser:
		keys = [][2]string{{"space", "toggle"}, {"a", "add"}, {"R", "reload"}, {"esc", "back"}}
	default:
		keys = [][2]string{{"j/k", "scroll"}, {"esc", "back"}}
	}
	var parts []string
	for _, k := range keys {
		parts = append(parts, st.key.Render(k[0])+" "+k[1])
	}
	// What does not fit goes from before help and quit, which always show
	// (help lists everything).
	for len(parts) > 2 && ansi.StringWidth(strings.Join(parts, "  ")) > m.width {
		parts = slices.Delete(parts, len(parts)-3, len(parts)-2)
	}
	return strings.Join(parts, "  ")
}
