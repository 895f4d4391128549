package engine

import (
	"testing"
	"time"
)

func TestSlept(t *testing.T) {
	for _, tc := range []struct {
		name       string
		wall, mono time.Duration
		want       bool
	}{
		{"steady", 5 * time.Second, 5 * time.Second, false},
		{"suspended for an hour", time.Hour + 5*time.Second, 5 * time.Second, true},
		{"NTP step forward", 7 * time.Second, 5 * time.Second, false},
		{"clock set back", -time.Hour, 5 * time.Second, false},
	} {
		if got := slept(tc.wall, tc.mono); got != tc.want {
			t.Errorf("%s: slept = %v, want %v", tc.name, got, tc.want)
		}
	}
}
