package api

import (
	"slices"
	"testing"
)

func TestMatch(t *testing.T) {
	forwards := []Forward{
		{Context: "dev", Namespace: "demo", Service: "web", Names: []string{"web", "web.demo"}},
		{Context: "dev", Namespace: "demo2", Service: "web", Names: []string{"web.demo2"}},
		{Context: "dev", Namespace: "demo", Service: "db", Names: []string{"db"}},
		{Context: "dev", Namespace: "demo", Service: "db", Pod: "db-0", Names: []string{"db-0.db"}},
		{Context: "dev", Namespace: "demo", Service: "paused"},
	}
	for want, hits := range map[string][]int{
		"web":            {0}, // a hostname: that forward alone
		"web.demo2":      {1},
		"demo2/web":      {1},
		"dev/demo/web":   {0},
		"db":             {2}, // the hostname db, not the pod's
		"demo/db":        {2, 3},
		"db-0.db":        {3},
		"paused":         {4}, // no names: by its Service name
		"paused.demo":    {4},
		"nope":           nil,
		"other/demo/web": nil,
	} {
		if got := Match(forwards, want); !slices.Equal(got, hits) {
			t.Errorf("Match(%q) = %v, want %v", want, got, hits)
		}
	}
}
