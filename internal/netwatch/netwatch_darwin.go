package netwatch

import (
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/net/route"
	"golang.org/x/sys/unix"
)

// routeSource reads the routing socket. This file is only built for macOS
// and cannot be run where kubefwd is tested (Linux): it is kept to what
// golang.org/x/net/route parses, and the filter it feeds is tested on its
// own (netwatch_test.go).
type routeSource struct {
	f   *os.File
	buf []byte
}

func open(opts Options) (source, error) {
	if opts.NetNS != "" {
		return nil, fmt.Errorf("cannot watch network namespace %s: namespaces are Linux only", opts.NetNS)
	}
	fd, err := unix.Socket(unix.AF_ROUTE, unix.SOCK_RAW, unix.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("cannot listen for network changes: opening the routing socket: %w", err)
	}
	unix.CloseOnExec(fd)
	// Non-blocking, so the runtime's poller waits for it and Close ends a
	// read in progress.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("cannot listen for network changes: %w", err)
	}
	return &routeSource{f: os.NewFile(uintptr(fd), "route"), buf: make([]byte, 64<<10)}, nil
}

func (s *routeSource) close() error { return s.f.Close() }

func (s *routeSource) read() ([]message, error) {
	n, err := s.f.Read(s.buf)
	if err == unix.ENOBUFS {
		return []message{{kind: kindLost}}, nil
	}
	if err != nil {
		return nil, err
	}
	msgs, err := route.ParseRIB(route.RIBTypeRoute, s.buf[:n])
	if err != nil {
		return nil, nil // not a message we can read; the next one may be
	}
	var out []message
	for _, rm := range msgs {
		switch rm := rm.(type) {
		case *route.RouteMessage:
			// Only changes: RTM_GET answers and misses are queries.
			if rm.Type != unix.RTM_ADD && rm.Type != unix.RTM_DELETE && rm.Type != unix.RTM_CHANGE {
				continue
			}
			out = append(out, message{kind: kindRoute, index: rm.Index, addr: addrAt(rm.Addrs, unix.RTAX_DST),
				// Neighbours (ARP, NDP) arrive as cloned host routes.
				cloned: rm.Flags&(unix.RTF_WASCLONED|unix.RTF_LLINFO) != 0})
		case *route.InterfaceAddrMessage:
			out = append(out, message{kind: kindAddress, index: rm.Index, addr: addrAt(rm.Addrs, unix.RTAX_IFA)})
		case *route.InterfaceMessage:
			out = append(out, message{kind: kindLink, index: rm.Index, name: rm.Name, loopback: rm.Flags&unix.IFF_LOOPBACK != 0})
		}
	}
	return out, nil
}

func addrAt(addrs []route.Addr, i int) netip.Prefix {
	if i >= len(addrs) {
		return netip.Prefix{}
	}
	switch a := addrs[i].(type) {
	case *route.Inet4Addr:
		return netip.PrefixFrom(netip.AddrFrom4(a.IP), 32)
	case *route.Inet6Addr:
		return netip.PrefixFrom(netip.AddrFrom16(a.IP), 128)
	}
	return netip.Prefix{}
}
