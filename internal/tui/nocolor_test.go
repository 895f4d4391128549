//go:build linux

package tui

import (
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/creack/pty"
)

// NO_COLOR is honoured: the same screen is drawn without a colour, while a
// colour terminal gets them. Through a real program, its renderer and its
// terminal detection (so on a pseudo-terminal).
func TestNoColor(t *testing.T) {
	draw := func(env []string) string {
		master, slave, err := pty.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer master.Close()
		defer slave.Close()
		var out syncBuffer
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := master.Read(buf)
				out.Write(buf[:n])
				if err != nil {
					return
				}
			}
		}()
		m := New("inst", false)
		m.now, m.loc = func() time.Time { return t0 }, time.UTC
		p := tea.NewProgram(m, tea.WithInput(nil), tea.WithOutput(slave), tea.WithEnvironment(env), tea.WithWindowSize(100, 30))
		done := make(chan error, 1)
		go func() { _, err := p.Run(); done <- err }()
		p.Send(attachedMsg{b: &fake{}})
		p.Send(statusMsg{st: fixture(1000), at: t0})
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(out.String(), "paused") && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		p.Quit()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	colour := draw([]string{"TERM=xterm-256color", "COLORTERM=truecolor"})
	plain := draw([]string{"TERM=xterm-256color", "COLORTERM=truecolor", "NO_COLOR=1"})
	if !strings.Contains(plain, "paused") || !strings.Contains(colour, "paused") {
		t.Fatalf("the table was not drawn:\n%q\n%q", plain, colour)
	}
	if !strings.Contains(colour, "38;2;") {
		t.Errorf("a colour terminal got no colour: %q", colour)
	}
	if strings.Contains(plain, "38;2;") || strings.Contains(plain, "38;5;") {
		t.Errorf("NO_COLOR still got colours: %q", plain)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
