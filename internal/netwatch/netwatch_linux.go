package netwatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// netlinkSource reads rtnetlink notifications. Written against x/sys/unix
// rather than a netlink library: it needs three message types and a few
// attributes, not a dependency.
type netlinkSource struct {
	f   *os.File
	buf []byte
}

func open(opts Options) (source, error) {
	fd, err := socketIn(opts.NetNS)
	if err != nil {
		return nil, err
	}
	groups := uint32(unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR | unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("cannot listen for network changes: binding the netlink socket: %w", err)
	}
	// Non-blocking, so the runtime's poller waits for it and Close ends a
	// read in progress.
	return &netlinkSource{f: os.NewFile(uintptr(fd), "netlink"), buf: make([]byte, 64<<10)}, nil
}

// socketIn opens the netlink socket in the network namespace at netns (ours
// if empty). A socket belongs to the namespace it was made in for its whole
// life, so only the socket call runs there, on a thread of its own.
func socketIn(netns string) (int, error) {
	newSocket := func() (int, error) {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
		if err != nil {
			return -1, fmt.Errorf("cannot listen for network changes: opening a netlink socket: %w", err)
		}
		return fd, nil
	}
	if netns == "" {
		return newSocket()
	}
	target, err := unix.Open(netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("cannot open network namespace %s: %w", netns, err)
	}
	defer unix.Close(target)
	type result struct {
		fd  int
		err error
	}
	done := make(chan result, 1)
	// A goroutine of its own: if the thread cannot be brought back to our
	// namespace, it stays locked and the runtime ends it with the goroutine.
	go func() {
		runtime.LockOSThread()
		own, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{-1, fmt.Errorf("cannot open our own network namespace: %w", err)}
			return
		}
		defer unix.Close(own)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{-1, fmt.Errorf("cannot enter network namespace %s: %w", netns, err)}
			return
		}
		fd, err := newSocket()
		if unix.Setns(own, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- result{fd, err}
	}()
	r := <-done
	return r.fd, r.err
}

func (s *netlinkSource) close() error { return s.f.Close() }

func (s *netlinkSource) read() ([]message, error) {
	n, err := s.f.Read(s.buf)
	if errors.Is(err, unix.ENOBUFS) {
		// The kernel dropped notifications we were too slow to read.
		return []message{{kind: kindLost}}, nil
	}
	if err != nil {
		return nil, err
	}
	nms, err := syscall.ParseNetlinkMessage(s.buf[:n])
	if err != nil {
		return nil, nil // not a notification we can read; the next one may be
	}
	var out []message
	for i := range nms {
		if m, ok := parse(&nms[i]); ok {
			out = append(out, m)
		}
	}
	return out, nil
}

// parse reads one rtnetlink notification (the kernel's structs are in the
// machine's byte order).
func parse(nm *syscall.NetlinkMessage) (message, bool) {
	var m message
	switch nm.Header.Type {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		if len(nm.Data) < unix.SizeofIfInfomsg {
			return m, false
		}
		// struct ifinfomsg: family, pad, type, index, flags, change
		flags, change := binary.NativeEndian.Uint32(nm.Data[8:]), binary.NativeEndian.Uint32(nm.Data[12:])
		m.kind, m.index = kindLink, int(int32(binary.NativeEndian.Uint32(nm.Data[4:])))
		m.loopback = flags&unix.IFF_LOOPBACK != 0
		m.noChange = nm.Header.Type == unix.RTM_NEWLINK && change == 0
		// A new link comes with every flag "changed".
		m.stillDown = nm.Header.Type == unix.RTM_NEWLINK && flags&unix.IFF_UP == 0 &&
			(change == ^uint32(0) || change&unix.IFF_UP == 0)
		if master := attr(nm, unix.IFLA_MASTER); len(master) == 4 && binary.NativeEndian.Uint32(master) != 0 {
			m.bridgePort = true
		}
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		if len(nm.Data) < unix.SizeofIfAddrmsg {
			return m, false
		}
		// struct ifaddrmsg: family, prefixlen, flags, scope, index
		m.kind, m.index = kindAddress, int(binary.NativeEndian.Uint32(nm.Data[4:]))
		m.addr = prefixOf(attr(nm, unix.IFA_ADDRESS), nm.Data[1])
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		if len(nm.Data) < unix.SizeofRtMsg {
			return m, false
		}
		// struct rtmsg: family, dst_len, src_len, tos, table, protocol,
		// scope, type, flags
		m.kind = kindRoute
		m.cloned = binary.NativeEndian.Uint32(nm.Data[8:])&unix.RTM_F_CLONED != 0
		if oif := attr(nm, unix.RTA_OIF); len(oif) == 4 {
			m.index = int(int32(binary.NativeEndian.Uint32(oif)))
		}
		m.addr = prefixOf(attr(nm, unix.RTA_DST), nm.Data[1])
	default:
		return m, false
	}
	switch nm.Header.Type {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		if name := attr(nm, unix.IFLA_IFNAME); len(name) > 0 {
			m.name = cString(name)
		}
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		if name := attr(nm, unix.IFA_LABEL); len(name) > 0 {
			m.name = cString(name)
		}
	}
	return m, true
}

// attr is the value of the message's attribute typ, or nil.
func attr(nm *syscall.NetlinkMessage, typ uint16) []byte {
	attrs, err := syscall.ParseNetlinkRouteAttr(nm)
	if err != nil {
		return nil
	}
	for _, a := range attrs {
		if a.Attr.Type == typ {
			return a.Value
		}
	}
	return nil
}

func prefixOf(b []byte, bits uint8) netip.Prefix {
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		return netip.Prefix{}
	}
	// Not masked: the address itself is what the filter looks at.
	return netip.PrefixFrom(a, int(bits))
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
