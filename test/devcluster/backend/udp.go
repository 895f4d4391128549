package backend

import (
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/net/dns/dnsmessage"
)

// UDPServer stands in for a pod's UDP port: a small DNS responder (every
// A question is answered with DNSAnswer, and a TXT question with the pod's
// name), and for anything that is not a DNS query, an echo prefixed with
// "namespace/pod:port " so that a test sees which pod answered.
type UDPServer struct {
	pod  int32
	conn net.PacketConn
	done chan struct{}
}

// DNSAnswer is the address the UDP backends give every A question.
var DNSAnswer = netip.MustParseAddr("192.0.2.53")

// StartUDP listens on 127.0.0.1 (a kernel-chosen port).
func StartUDP(namespace, pod string, port int32) (*UDPServer, error) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("UDP backend for %s/%s:%d: %w", namespace, pod, port, err)
	}
	s := &UDPServer{pod: port, conn: conn, done: make(chan struct{})}
	name := fmt.Sprintf("%s/%s:%d", namespace, pod, port)
	go func() {
		defer close(s.done)
		buf := make([]byte, 65535)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			reply := answerDNS(buf[:n], namespace+"/"+pod)
			if reply == nil {
				reply = append([]byte(name+" "), buf[:n]...)
			}
			_, _ = conn.WriteTo(reply, from)
		}
	}()
	return s, nil
}

// Addr is where the server listens.
func (s *UDPServer) Addr() string { return s.conn.LocalAddr().String() }

// PodPort is the container port the server stands in for.
func (s *UDPServer) PodPort() int32 { return s.pod }

// Close stops the server.
func (s *UDPServer) Close() error {
	err := s.conn.Close()
	<-s.done
	return err
}

// answerDNS answers a DNS query; nil if q is not one.
func answerDNS(q []byte, pod string) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil || h.Response {
		return nil
	}
	questions, err := p.AllQuestions()
	if err != nil || len(questions) == 0 {
		return nil
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired})
	b.EnableCompression()
	if b.StartQuestions() != nil {
		return nil
	}
	for _, q := range questions {
		if b.Question(q) != nil {
			return nil
		}
	}
	if b.StartAnswers() != nil {
		return nil
	}
	for _, q := range questions {
		rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5}
		switch q.Type {
		case dnsmessage.TypeA:
			if b.AResource(rh, dnsmessage.AResource{A: DNSAnswer.As4()}) != nil {
				return nil
			}
		case dnsmessage.TypeTXT:
			if b.TXTResource(rh, dnsmessage.TXTResource{TXT: []string{pod}}) != nil {
				return nil
			}
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}
