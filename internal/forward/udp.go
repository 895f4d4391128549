package forward

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/kubefwd/kubefwd/internal/relay"
)

// UDPOptions tune ServeUDP; zero values pick the defaults.
type UDPOptions struct {
	// FlowIdle ends a client's flow after this long without a datagram
	// either way. Default 2 minutes, as the relay's.
	FlowIdle time.Duration
	// Queue is how many of a client's datagrams wait while its flow's
	// stream opens, or behind a slow stream; more are dropped, as a
	// congested network would. Default 64.
	Queue int
}

// ServeUDP carries the datagrams that arrive on pc through the relay:
// each client address:port is a flow, carried on a stream of its own to
// an endpoint picker chooses (a relay endpoint: its Target is what the
// relay sends to), framed so that every datagram stays whole; replies go
// back to the client they belong to. A flow ends after FlowIdle without a
// datagram, or when its stream fails (the client's next datagram opens a
// new one). ServeUDP returns when ctx ends or pc is closed, after closing
// pc and every flow.
func (p *Proxy) ServeUDP(ctx context.Context, pc net.PacketConn, name string, picker Picker, c *Counters, opts UDPOptions) {
	if opts.FlowIdle <= 0 {
		opts.FlowIdle = 2 * time.Minute
	}
	if opts.Queue <= 0 {
		opts.Queue = 64
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	defer pc.Close()

	var (
		mu    sync.Mutex
		flows = map[string]*udpFlow{} // by client address; guarded by mu
		wg    sync.WaitGroup
	)
	defer wg.Wait()
	defer cancel() // before wg.Wait: ends every flow
	buf := make([]byte, relay.MaxDatagram)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				p.log.Warn("UDP socket failed; its flows end", "forward", name, "err", err)
			}
			return
		}
		d := make([]byte, n)
		copy(d, buf[:n])
		key := addr.String()
		mu.Lock()
		f := flows[key]
		if f == nil {
			f = &udpFlow{in: make(chan []byte, opts.Queue)}
			flows[key] = f
			wg.Go(func() {
				p.flow(ctx, pc, addr, name, picker, c, f, opts.FlowIdle)
				mu.Lock()
				delete(flows, key)
				mu.Unlock()
			})
		}
		mu.Unlock()
		select {
		case f.in <- d:
		default: // the flow is behind: drop, as the network would
		}
	}
}

type udpFlow struct {
	in chan []byte // the client's datagrams, not yet sent
}

// flow carries one client's datagrams until it idles out, its stream
// fails or ctx ends.
func (p *Proxy) flow(ctx context.Context, pc net.PacketConn, client net.Addr, name string, picker Picker, c *Counters, f *udpFlow, idle time.Duration) {
	c.Active.Add(1)
	defer c.Active.Add(-1)
	s, ep, err := p.openFlow(ctx, picker, c)
	if err != nil {
		if ctx.Err() == nil {
			c.Failed.Add(1)
			c.Trouble.failed(err, time.Time{})
			p.log.Warn("UDP flow not carried", "forward", name, "client", client.String(), "err", err)
		}
		return
	}
	defer s.Close()
	c.Trouble.ok()
	p.log.Debug("UDP flow", "forward", name, "client", client.String(), "endpoint", ep.String())

	var last time.Time
	var lastMu sync.Mutex
	touch := func() { lastMu.Lock(); last = time.Now(); lastMu.Unlock() }
	touch()
	done := make(chan struct{})
	go func() { // replies: stream → client
		defer close(done)
		buf := make([]byte, relay.MaxDatagram)
		for {
			n, err := relay.ReadDatagram(s, buf)
			if err != nil {
				return
			}
			touch()
			if _, err := pc.WriteTo(buf[:n], client); err == nil {
				c.BytesIn.Add(int64(n))
			}
		}
	}()
	check := time.NewTicker(min(idle/4, time.Second))
	defer check.Stop()
	for {
		select {
		case d := <-f.in:
			touch()
			if err := relay.WriteDatagram(s, d); err != nil {
				c.StreamErrors.Add(1)
				s.Close()
				<-done
				return
			}
			c.BytesOut.Add(int64(len(d)))
		case <-done:
			return // the relay ended the flow, or the stream failed
		case <-check.C:
			lastMu.Lock()
			quiet := time.Since(last)
			lastMu.Unlock()
			if quiet >= idle {
				s.Close()
				<-done
				return
			}
		case <-ctx.Done():
			s.Close()
			<-done
			return
		}
	}
}

// openFlow opens a flow's stream through the relay, trying the endpoints
// as a TCP connection would, until WaitForEndpoint has passed.
func (p *Proxy) openFlow(ctx context.Context, picker Picker, c *Counters) (*Stream, Endpoint, error) {
	deadline := time.Now().Add(p.opts.WaitForEndpoint)
	pause := 100 * time.Millisecond
	var tried []Endpoint
	var lastErr error
	for {
		pickCtx, cancel := context.WithDeadline(ctx, deadline)
		ep, err := picker.Pick(pickCtx, tried)
		cancel()
		if err != nil {
			if lastErr != nil {
				return nil, Endpoint{}, lastErr
			}
			return nil, Endpoint{}, errNoEndpoint
		}
		tried = append(tried, ep)
		s, err := p.openTo(ctx, ep, "udp")
		if err == nil {
			return s, ep, nil
		}
		c.StreamErrors.Add(1)
		picker.Failed(ep)
		lastErr = err
		if Forbidden(err) || ctx.Err() != nil || time.Now().Add(pause).After(deadline) {
			return nil, Endpoint{}, lastErr
		}
		c.Retried.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
}
