package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/catalog"
	"github.com/kubefwd/kubefwd/internal/forward"
)

// syncPorts opens listeners for new ports, updates endpoints of existing
// ones and closes those no longer wanted.
func (e *Engine) syncPorts(serveCtx context.Context, cl *cluster, o origin, addr netip.Addr, have map[listenKey]*portForward, want []catalog.Port) error {
	name := o.String()
	keep := map[listenKey]bool{}
	var errs []error
	for _, p := range want {
		k := listenKey{port: p.Local, udp: p.Protocol == corev1.ProtocolUDP}
		if !catalog.ValidPort(p.Local) || keep[k] {
			// catalog.Build skips these with the reason; a port number must
			// never wrap through uint16, nor two ports share a listener.
			e.log.Error("port not forwarded: impossible or duplicate local port", "service", name, "port", p.Port, "local", p.Local)
			continue
		}
		keep[k] = true
		pf := have[k]
		if pf == nil {
			if e.opts.Aliases != nil {
				if err := e.opts.Aliases.Add(addr); err != nil {
					errs = append(errs, fmt.Errorf("cannot use address %s: %w", addr, err))
					continue
				}
			}
			ap := netip.AddrPortFrom(addr, uint16(p.Local))
			pf = &portForward{port: p.Port, eps: forward.NewEndpoints(e.opts.PinFirst), counters: &forward.Counters{}}
			pf.counters.Trouble.OnChange = func(st forward.TroubleState) { e.troubleChanged(o, pf, st) }
			if k.udp {
				pc, err := e.listenPacket(ap)
				if err != nil {
					errs = append(errs, listenError(addr, p.Local, err))
					continue
				}
				pf.pc = pc
				e.serveUDP(serveCtx, cl, o, pf)
			} else {
				ln, err := e.listen(ap)
				if err != nil {
					errs = append(errs, listenError(addr, p.Local, err))
					continue
				}
				pf.ln = ln
				if err := e.serve(serveCtx, cl, o, pf); err != nil {
					ln.Close()
					errs = append(errs, fmt.Errorf("cannot serve %s: %w", ln.Addr(), err))
					continue
				}
			}
			have[k] = pf
			e.log.Info("forwarding", "service", name, "listen", pf.addr(), "port", p.Port, "endpoints", len(p.Endpoints))
		}
		pf.name = p.Name
		pf.relay = p.Relay
		if !sameEndpoints(pf.eps.List(), p.Endpoints) {
			// New pods deserve a fresh judgement: what the old ones did
			// says nothing about them.
			pf.counters.Trouble.Reset()
		}
		pf.eps.Set(p.Endpoints)
	}
	for k, pf := range have {
		if !keep[k] {
			pf.close()
			delete(have, k)
			e.log.Info("port no longer forwarded", "service", name, "listen", pf.addr())
		}
	}
	return errors.Join(errs...)
}

// addr is where pf listens, as logs show it.
func (pf *portForward) addr() string {
	if pf.pc != nil {
		return pf.pc.LocalAddr().String() + "/udp"
	}
	return pf.ln.Addr().String()
}

func (pf *portForward) close() {
	if pf.pc != nil {
		pf.pc.Close()
		return
	}
	pf.ln.Close()
}

// serveUDP carries the flows of pf's UDP socket through the relay until
// the socket closes.
func (e *Engine) serveUDP(serveCtx context.Context, cl *cluster, o origin, pf *portForward) {
	name := o.String() + ":" + strconv.Itoa(int(pf.port)) + "/udp"
	e.serving.Go(func() {
		cl.proxy.ServeUDP(serveCtx, pf.pc, name, pf.eps, pf.counters, e.opts.UDP)
	})
}

// sameEndpoints says whether two lists hold the same endpoints, in any
// order, repeats aside.
func sameEndpoints(a, b []forward.Endpoint) bool {
	set := func(l []forward.Endpoint) map[forward.Endpoint]bool {
		m := make(map[forward.Endpoint]bool, len(l))
		for _, ep := range l {
			m[ep] = true
		}
		return m
	}
	return maps.Equal(set(a), set(b))
}

func (e *Engine) listenPacket(ap netip.AddrPort) (net.PacketConn, error) {
	if e.opts.ListenPacket != nil {
		return e.opts.ListenPacket(ap)
	}
	return net.ListenPacket("udp", ap.String())
}

func (e *Engine) listen(ap netip.AddrPort) (net.Listener, error) {
	if e.opts.Listen != nil {
		return e.opts.Listen(ap)
	}
	return net.Listen("tcp", ap.String())
}

// troubleChanged tells event followers that a port's connections stopped
// (or started again) reaching its pods; status has the same at every
// snapshot.
func (e *Engine) troubleChanged(o origin, pf *portForward, st forward.TroubleState) {
	state, reason := troubleState(o.key.Namespace, st, time.Now())
	e.events.emit(api.Event{Type: api.EventForward, Context: o.key.Context, Namespace: o.key.Namespace, Service: o.key.Name, Pod: o.pod,
		State: state, Reason: reason, Message: fmt.Sprintf("port %d", pf.port)})
}

// origin is what a listener forwards: a Service, or one pod of a headless
// Service.
type origin struct {
	key catalog.Key
	pod string
}

func (o origin) String() string {
	if o.pod == "" {
		return o.key.String()
	}
	return o.key.String() + "/" + o.pod
}

// serve hands the connections accepted on pf's listener to the proxy until
// the listener closes; pf.ln becomes the acceptor's listener.
func (e *Engine) serve(serveCtx context.Context, cl *cluster, o origin, pf *portForward) error {
	// The forward's name is made per connection, not kept per listener:
	// with thousands of idle listeners those strings add up.
	name := func() string { return o.String() + ":" + strconv.Itoa(int(pf.port)) }
	ln, err := e.accept.Serve(pf.ln, func(conn net.Conn) {
		e.mu.Lock()
		e.conns[conn] = struct{}{}
		e.mu.Unlock()
		e.serving.Go(func() {
			if err := cl.proxy.Serve(serveCtx, conn, name(), pf.eps, pf.counters); err != nil && serveCtx.Err() == nil {
				pf.lastErr.Store(&failure{at: time.Now(), msg: err.Error()})
				e.events.emit(api.Event{
					Type: api.EventConnectionFailed, Context: o.key.Context, Namespace: o.key.Namespace, Service: o.key.Name, Pod: o.pod,
					Message: fmt.Sprintf("port %d: %v", pf.port, err),
				})
			}
			e.mu.Lock()
			delete(e.conns, conn)
			e.mu.Unlock()
		})
	}, func(err error) {
		e.log.Warn("accept failed", "forward", name(), "err", err)
	})
	if err != nil {
		return err
	}
	pf.ln = ln
	return nil
}

func listenError(addr netip.Addr, port int32, err error) error {
	msg := fmt.Sprintf("cannot listen on %s:%d: %v", addr, port, err)
	if errors.Is(err, os.ErrPermission) {
		msg += " (ports below 1024 need root; run with sudo, or map the port with -m " + strconv.Itoa(int(port)) + ":" + strconv.Itoa(int(port)+8000) + ")"
	}
	return errors.New(msg)
}

func closePorts(ports map[listenKey]*portForward) {
	for k, pf := range ports {
		pf.close()
		delete(ports, k)
	}
}
