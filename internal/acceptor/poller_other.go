//go:build !linux

package acceptor

import (
	"errors"
	"net"
)

// poller is Linux's; elsewhere every listener has its own accept loop.
type poller struct{}

func newPoller() (*poller, error) { return nil, errors.New("no poller on this system") }

func (*poller) add(net.Listener, Handler, func(error)) (func(), bool) { return nil, false }

func (*poller) close() {}
