package relay

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadRequest(t *testing.T) {
	tests := []struct {
		line string
		want Request
		err  string
	}{
		{"KUBEFWD-RELAY/1 tcp 10.96.0.1:443\n", Request{"tcp", "10.96.0.1:443"}, ""},
		{"KUBEFWD-RELAY/1 udp dns.demo.svc.cluster.local:53\n", Request{"udp", "dns.demo.svc.cluster.local:53"}, ""},
		{"KUBEFWD-RELAY/1 tcp [fd00::1]:80\n", Request{"tcp", "[fd00::1]:80"}, ""},
		{"KUBEFWD-RELAY/1 ping -\n", Ping, ""},
		{"KUBEFWD-RELAY/1 ping 10.0.0.1:80\n", Request{}, "ping takes no target"},
		{"KUBEFWD-RELAY/1 sctp 10.0.0.1:80\n", Request{}, "want tcp, udp or ping"},
		{"KUBEFWD-RELAY/1 tcp 10.0.0.1\n", Request{}, "missing port"},
		{"KUBEFWD-RELAY/1 tcp 10.0.0.1:0\n", Request{}, "port must be 1-65535"},
		{"KUBEFWD-RELAY/1 tcp 10.0.0.1:70000\n", Request{}, "port must be 1-65535"},
		{"KUBEFWD-RELAY/1 tcp :80\n", Request{}, "no usable host"},
		{"KUBEFWD-RELAY/2 tcp 10.0.0.1:80\n", Request{}, "not a KUBEFWD-RELAY/1 header"},
		{"KUBEFWD-RELAY/1 tcp  10.0.0.1:80\n", Request{}, "not a KUBEFWD-RELAY/1 header"},
		{"GET / HTTP/1.1\n", Request{}, "not a KUBEFWD-RELAY/1 header"},
		{"KUBEFWD-RELAY/1 tcp 10.0.0.1:80", Request{}, "unexpected EOF"},
		{"KUBEFWD-RELAY/1 tcp " + strings.Repeat("a", 600) + ":80\n", Request{}, "longer than 512"},
	}
	for _, tt := range tests {
		got, err := ReadRequest(bufio.NewReader(strings.NewReader(tt.line)))
		if tt.err == "" {
			if err != nil || got != tt.want {
				t.Errorf("%q: %+v, %v; want %+v", tt.line, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%q: error %v, want one saying %q", tt.line, err, tt.err)
		}
	}
}

func FuzzReadRequest(f *testing.F) {
	f.Add("KUBEFWD-RELAY/1 tcp 10.96.0.1:443\n")
	f.Add("KUBEFWD-RELAY/1 udp a:53\nrest")
	f.Add("\n")
	f.Fuzz(func(t *testing.T, in string) {
		r, err := ReadRequest(bufio.NewReader(strings.NewReader(in)))
		if err != nil {
			return
		}
		// What is accepted is valid and says the same when written again.
		var b bytes.Buffer
		if err := WriteRequest(&b, r); err != nil {
			t.Fatalf("accepted %+v, which does not write: %v", r, err)
		}
		again, err := ReadRequest(bufio.NewReader(&b))
		if err != nil || again != r {
			t.Fatalf("round trip of %+v: %+v, %v", r, again, err)
		}
	})
}

// Ask reads each answer and not a byte more: what follows is the
// target's, and the caller reads it from its own connection.
func TestReplies(t *testing.T) {
	var b bytes.Buffer
	writeReply(&b, nil)
	writeReply(&b, errors.New("dial tcp 10.0.0.1:80: connect:\nrefused"))
	b.WriteString("WHAT\n")
	b.WriteString("after")
	var sent bytes.Buffer
	rw := struct {
		io.Reader
		io.Writer
	}{&b, &sent}
	req := Request{"tcp", "10.0.0.1:80"}
	if err := Ask(rw, req); err != nil {
		t.Errorf("OK read as %v", err)
	}
	var re *RemoteError
	if err := Ask(rw, req); !errors.As(err, &re) || re.Reason != "dial tcp 10.0.0.1:80: connect: refused" {
		t.Errorf("refusal read as %v", err)
	}
	if err := Ask(rw, req); err == nil || errors.As(err, &re) {
		t.Errorf("nonsense read as %v", err)
	}
	if b.String() != "after" {
		t.Errorf("left %q unread, want %q", b.String(), "after")
	}
	if err := Ask(rw, req); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a cut answer read as %v", err)
	}
	if want := strings.Repeat("KUBEFWD-RELAY/1 tcp 10.0.0.1:80\n", 4); sent.String() != want {
		t.Errorf("sent %q, want %q", sent.String(), want)
	}
}

func TestDatagrams(t *testing.T) {
	var b bytes.Buffer
	sizes := []int{0, 1, 512, MaxDatagram}
	for _, n := range sizes {
		if err := WriteDatagram(&b, bytes.Repeat([]byte{byte(n)}, n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteDatagram(&b, make([]byte, MaxDatagram+1)); err == nil {
		t.Error("a datagram over the limit was framed")
	}
	buf := make([]byte, MaxDatagram)
	for _, want := range sizes {
		n, err := ReadDatagram(&b, buf)
		if err != nil || n != want || !bytes.Equal(buf[:n], bytes.Repeat([]byte{byte(want)}, want)) {
			t.Fatalf("datagram of %d: read %d, %v", want, n, err)
		}
	}
	if _, err := ReadDatagram(&b, buf); err != io.EOF {
		t.Errorf("after the last: %v, want EOF", err)
	}
	// A frame cut short is an error, not a short datagram.
	if _, err := ReadDatagram(bytes.NewReader([]byte{0, 10, 1, 2}), buf); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut frame: %v", err)
	}
	if _, err := ReadDatagram(bytes.NewReader([]byte{0, 10}), make([]byte, 4)); err == nil {
		t.Error("a frame larger than the buffer was read")
	}
}
