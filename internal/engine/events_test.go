package engine

import (
	"strconv"
	"testing"

	"github.com/kubefwd/kubefwd/internal/api"
)

// A subscriber gets what happened before it came (the hub keeps the last
// recentKept events) and then what happens after, without gap or repeat.
func TestHubRecentThenLive(t *testing.T) {
	var h hub
	for i := range recentKept + 120 {
		h.emit(api.Event{Type: api.EventForward, Message: strconv.Itoa(i)})
	}
	s := h.subscribe()
	defer s.Close()
	recent := s.Recent()
	if len(recent) > recentKept || len(recent) < recentKept*9/10 {
		t.Fatalf("%d recent events kept, want about %d", len(recent), recentKept)
	}
	if last := recent[len(recent)-1].Message; last != strconv.Itoa(recentKept+119) {
		t.Errorf("the newest kept is %s", last)
	}
	for i := 1; i < len(recent); i++ {
		a, _ := strconv.Atoi(recent[i-1].Message)
		b, _ := strconv.Atoi(recent[i].Message)
		if b != a+1 {
			t.Fatalf("recent events out of order or with a gap: %d then %d", a, b)
		}
	}
	h.emit(api.Event{Type: api.EventRefresh, Message: "live"})
	if ev := <-s.Events(); ev.Message != "live" {
		t.Errorf("the first live event is %q", ev.Message)
	}
}
