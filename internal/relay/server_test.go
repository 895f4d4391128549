package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// startRelay runs a Server on loopback and returns its address and what
// Serve returned, once it has.
func startRelay(t *testing.T, s *Server) (addr string, result <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	res, finished := make(chan error, 1), make(chan struct{})
	go func() {
		res <- s.Serve(ctx, ln)
		close(finished)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})
	return ln.Addr().String(), res
}

func open(t *testing.T, relay string, r Request) (net.Conn, error) {
	t.Helper()
	c, err := net.Dial("tcp", relay)
	if err != nil {
		t.Fatal(err)
	}
	if err := Ask(c, r); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// tcpEcho answers every connection with what it sent, after its half-close.
func tcpEcho(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				c.Write(append([]byte("echo:"), b...))
			}()
		}
	}()
	return ln.Addr().String()
}

// udpEcho answers every datagram with itself, prefixed.
func udpEcho(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, MaxDatagram)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	return pc.LocalAddr().String()
}

func TestRelayTCP(t *testing.T) {
	relay, _ := startRelay(t, &Server{})
	echo := tcpEcho(t)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			c, err := open(t, relay, Request{"tcp", echo})
			if err != nil {
				t.Errorf("open: %v", err)
				return
			}
			defer c.Close()
			msg := bytes.Repeat([]byte(fmt.Sprint(i)), 100_000) // more than one read's worth
			if _, err := c.Write(msg); err != nil {
				t.Error(err)
				return
			}
			// The half-close reaches the target, which answers only then.
			if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
				t.Error(err)
				return
			}
			got, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(got, append([]byte("echo:"), msg...)) {
				t.Errorf("connection %d: %d bytes back, %v", i, len(got), err)
			}
		})
	}
	wg.Wait()
}

func TestRelayRefusals(t *testing.T) {
	relay, _ := startRelay(t, &Server{DialTimeout: 2 * time.Second})
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	gone := closed.Addr().String()
	closed.Close()
	var re *RemoteError
	if _, err := open(t, relay, Request{"tcp", gone}); !errors.As(err, &re) {
		t.Errorf("a target nobody listens on: %v, want the relay's refusal", err)
	}
	// A stream that is not the protocol gets an answer saying so.
	c, err := net.Dial("tcp", relay)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	answer, _ := io.ReadAll(c)
	if !bytes.HasPrefix(answer, []byte("ERR not a KUBEFWD-RELAY/1 header")) {
		t.Errorf("answer to HTTP: %q", answer)
	}
}

// Many flows at once, each from its own stream: every reply comes back to
// the flow that asked, whole, one datagram per datagram. Requests wait for
// their answers, as DNS does: UDP may drop what overflows a socket's
// buffer, and this is about the relay, not the loopback's buffers.
func TestRelayUDP(t *testing.T) {
	relay, _ := startRelay(t, &Server{})
	echo := udpEcho(t)
	ask := func(c net.Conn, msg []byte) error {
		if err := WriteDatagram(c, msg); err != nil {
			return err
		}
		buf := make([]byte, MaxDatagram)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := ReadDatagram(c, buf)
		if err != nil {
			return err
		}
		if want := append([]byte("echo:"), msg...); !bytes.Equal(buf[:n], want) {
			return fmt.Errorf("%d bytes back, want %d", n, len(want))
		}
		return nil
	}
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			c, err := open(t, relay, Request{"udp", echo})
			if err != nil {
				t.Errorf("open: %v", err)
				return
			}
			defer c.Close()
			for j, n := range []int{0, 1, 100, 1400} {
				if err := ask(c, bytes.Repeat([]byte{byte('a' + (i+j)%26)}, n)); err != nil {
					t.Errorf("flow %d, datagram of %d bytes: %v", i, n, err)
					return
				}
			}
		})
	}
	wg.Wait()
	// Large datagrams, one flow, keep their size exactly.
	c, err := open(t, relay, Request{"udp", echo})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, n := range []int{9000, 60000, 65000} {
		if err := ask(c, bytes.Repeat([]byte{'z'}, n)); err != nil {
			t.Errorf("datagram of %d bytes: %v", n, err)
		}
	}
}

// A UDP flow with no datagram either way for FlowIdle ends; one that keeps
// talking does not.
func TestRelayFlowIdle(t *testing.T) {
	relay, _ := startRelay(t, &Server{FlowIdle: 300 * time.Millisecond})
	echo := udpEcho(t)
	quiet, err := open(t, relay, Request{"udp", echo})
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	busy, err := open(t, relay, Request{"udp", echo})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	buf := make([]byte, MaxDatagram)
	for range 8 {
		if err := WriteDatagram(busy, []byte("ping")); err != nil {
			t.Fatal(err)
		}
		busy.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := ReadDatagram(busy, buf); err != nil {
			t.Fatalf("a flow in use ended: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	quiet.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := ReadDatagram(quiet, buf); !errors.Is(err, io.EOF) {
		t.Errorf("an idle flow: %v, want it ended (EOF)", err)
	}
}

// Without a stream for IdleExit the relay ends by itself; an open stream
// keeps it.
func TestRelayIdleExit(t *testing.T) {
	relay, result := startRelay(t, &Server{IdleExit: 400 * time.Millisecond})
	echo := tcpEcho(t)
	c, err := open(t, relay, Request{"tcp", echo})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-result:
		t.Fatalf("Serve returned with a stream open: %v", err)
	case <-time.After(time.Second):
	}
	c.Close()
	select {
	case err := <-result:
		if !errors.Is(err, ErrIdle) {
			t.Errorf("Serve returned %v, want ErrIdle", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the relay did not end once idle")
	}
}

// Connections that ask for nothing (a kubelet's TCP probe) do not keep an
// idle relay alive.
func TestRelayProbesDoNotKeepAlive(t *testing.T) {
	relay, result := startRelay(t, &Server{IdleExit: 600 * time.Millisecond})
	probe := time.NewTicker(100 * time.Millisecond)
	defer probe.Stop()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case err := <-result:
			if !errors.Is(err, ErrIdle) {
				t.Errorf("Serve returned %v, want ErrIdle", err)
			}
			return
		case <-probe.C:
			if c, err := net.Dial("tcp", relay); err == nil {
				c.Close()
			}
		case <-deadline:
			t.Fatal("probes kept the relay alive")
		}
	}
}

// An owner's pings keep an idle relay alive; they stop, it ends.
func TestRelayPingKeepsAlive(t *testing.T) {
	relay, result := startRelay(t, &Server{IdleExit: 600 * time.Millisecond})
	for range 8 {
		c, err := open(t, relay, Ping)
		if err != nil {
			t.Fatalf("ping: %v", err)
		}
		c.Close()
		time.Sleep(200 * time.Millisecond)
	}
	select {
	case err := <-result:
		t.Fatalf("Serve returned while pinged: %v", err)
	default:
	}
	select {
	case err := <-result:
		if !errors.Is(err, ErrIdle) {
			t.Errorf("Serve returned %v, want ErrIdle", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the relay did not end once the pings stopped")
	}
}
