package helper

import (
	"bufio"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"web", "web.demo", "web.demo.svc.cluster.local", "db-0.db", "A1", strings.Repeat("a", 63)} {
		if err := CheckName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "a.", ".a", "a b", "a\tb", "a\nb", "a#b", "-a", "a-", "a_b", "LOCALHOST", "x.localhost", "a/b", strings.Repeat("a", 64), strings.Repeat("a.", 127) + "a"} {
		if err := CheckName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCheckAddr(t *testing.T) {
	for _, ok := range []string{"127.1.27.1", "127.0.1.1", "127.255.255.254"} {
		if _, err := CheckAddr(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "0.0.0.0", "127.0.0.1", "127.0.0.53", "127.255.255.255", "128.0.0.1", "::1", "::ffff:127.1.1.1", "127.1.1.1%lo", "127.1.1.1:80", "0177.1.1.1"} {
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
		for _, e := range req.Entries {
			for _, n := range e.Names {
				if CheckName(n) == nil && strings.ContainsAny(n, " \t\r\n#\x00") {
					t.Fatalf("unsafe name %q accepted", n)
				}
			}
		}
	})
}
