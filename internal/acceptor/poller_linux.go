package acceptor

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// poller waits on many listeners with one epoll set and one goroutine.
// Listeners are registered level-triggered under an id of their own (not
// their descriptor, whose number the system reuses once closed), so an event
// still queued for a listener closed meanwhile finds no entry and is
// dropped. The listeners stay in Go's own poller as well; since nothing
// waits there, that costs nothing.
type poller struct {
	epfd, wakefd int
	done         chan struct{} // closed when run returns

	mu      sync.Mutex
	next    uint64            // guarded by mu
	entries map[uint64]*entry // guarded by mu
}

type entry struct {
	rc      syscall.RawConn
	handle  Handler
	onError func(error)
}

// wakeID is the eventfd's id: written to, it ends run.
const wakeID = 0

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	p := &poller{epfd: epfd, wakefd: wakefd, done: make(chan struct{}), next: wakeID + 1, entries: map[uint64]*entry{}}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, event(wakeID)); err != nil {
		unix.Close(wakefd)
		unix.Close(epfd)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	go p.run()
	return p, nil
}

func event(id uint64) *unix.EpollEvent {
	return &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
}

func eventID(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// add watches ln if it has a descriptor and returns what stops watching
// it; ok is false if it cannot be watched (it then needs an accept loop).
func (p *poller) add(ln net.Listener, handle Handler, onError func(error)) (stop func(), ok bool) {
	sc, isConn := ln.(syscall.Conn)
	if !isConn {
		return nil, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, false
	}
	p.mu.Lock()
	id := p.next
	p.next++
	p.entries[id] = &entry{rc: rc, handle: handle, onError: onError}
	p.mu.Unlock()
	var ctlErr error
	if err := rc.Control(func(fd uintptr) { ctlErr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), event(id)) }); err != nil || ctlErr != nil {
		p.forget(id)
		return nil, false
	}
	return func() {
		p.forget(id)
		// Closing the descriptor would drop it from the set too, unless
		// something holds a duplicate; say so explicitly.
		_ = rc.Control(func(fd uintptr) { _ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil) })
	}, true
}

func (p *poller) forget(id uint64) {
	p.mu.Lock()
	delete(p.entries, id)
	p.mu.Unlock()
}

func (p *poller) run() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			// Not expected with a valid set; accepting cannot go on. Tell
			// every listener's owner, then pause as after any error.
			p.mu.Lock()
			for _, e := range p.entries {
				e.onError(os.NewSyscallError("epoll_wait", err))
			}
			p.mu.Unlock()
			time.Sleep(retryAfter)
			continue
		}
		for i := range n {
			id := eventID(&events[i])
			if id == wakeID {
				return
			}
			p.mu.Lock()
			e := p.entries[id]
			p.mu.Unlock()
			if e != nil {
				p.accept(e)
			}
		}
	}
}

// acceptBatch bounds the connections taken from one listener per wakeup, so
// that one busy listener cannot starve the others; level-triggered events
// bring the poller back for the rest.
const acceptBatch = 16

// accept takes the connections pending on e's listener.
func (p *poller) accept(e *entry) {
	for range acceptBatch {
		var nfd int
		var acceptErr error
		// Control keeps the descriptor open while accept4 runs (a
		// listener's RawConn offers nothing else).
		if err := e.rc.Control(func(fd uintptr) {
			nfd, _, acceptErr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		}); err != nil {
			return // closed meanwhile
		}
		switch {
		case acceptErr == nil:
		case errors.Is(acceptErr, unix.EAGAIN):
			return
		case errors.Is(acceptErr, unix.ECONNABORTED), errors.Is(acceptErr, unix.EINTR):
			continue
		default:
			e.onError(os.NewSyscallError("accept4", acceptErr))
			time.Sleep(retryAfter) // out of descriptors, most likely
			return
		}
		conn, err := fileConn(nfd)
		if err != nil {
			e.onError(err)
			continue
		}
		e.handle(conn)
	}
}

// fileConn makes an accepted descriptor a net.Conn in Go's own poller.
func fileConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "")
	defer f.Close() // FileConn holds a duplicate
	return net.FileConn(f)
}

// close ends run and waits for it; handlers are not called after.
func (p *poller) close() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(p.wakefd, one[:])
	<-p.done
	unix.Close(p.wakefd)
	unix.Close(p.epfd)
}
