package helper

import (
	"bufio"
	"strings"
	"testing"

	"github.com/kubefwd/kubefwd/internal/names"
)

func TestCheckAddr(t *testing.T) {
	for _, ok := range []string{"127.1.27.1", "127.1.0.0", "127.255.255.254"} {
		if _, err := CheckAddr(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "0.0.0.0", "127.0.0.1", "127.0.0.53", "127.0.1.1", "127.0.255.254", "127.255.255.255", "128.0.0.1", "::1", "::ffff:127.1.1.1", "127.1.1.1%lo", "127.1.1.1:80", "0177.1.1.1"} {
		if _, err := CheckAddr(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestReadLine(t *testing.T) {
	r := bufio.NewReaderSize(strings.NewReader("short\n"+strings.Repeat("x", 100)+"\nlast"), 16)
	if got, err := readLine(r, 10); err != nil || string(got) != "short" {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := readLine(r, 10); err == nil {
		t.Fatal("an over-long line was read")
	}
}

// Whatever arrives, decoding and checking never panic, and what passes the
// checks is safe to put in a hosts file.
func FuzzRequest(f *testing.F) {
	f.Add([]byte(`{"op":"hosts","entries":[{"addr":"127.1.1.1","names":["web","web.demo"]}]}`))
	f.Add([]byte(`{"op":"listen","addr":"127.1.1.1","port":80}`))
	f.Add([]byte(`{"op":"hello","instance":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := decodeRequest(data)
		if err != nil {
			return
		}
		_ = CheckInstance(req.Instance)
		_, _ = CheckAddr(req.Addr)
		c := checkEntries(req.Entries, Policy{}.Reasons(), MaxUserBytes, "over")
		for _, e := range c.entries {
			for _, n := range e.Names {
				if names.CheckHostname(n) == nil && strings.ContainsAny(n, " \t\r\n#\x00") {
					t.Fatalf("unsafe name %q accepted", n)
				}
			}
		}
	})
}
