//go:build !linux && !darwin

package netwatch

import (
	"fmt"
)

// quietSource reports nothing: this system has no watcher (yet). Windows
// could use NotifyIpInterfaceChange; until then a network change there is
// noticed as before, when a tunnel's keepalive fails.
type quietSource struct{ done chan struct{} }

func open(opts Options) (source, error) {
	if opts.NetNS != "" {
		return nil, fmt.Errorf("cannot watch network namespace %s: namespaces are Linux only", opts.NetNS)
	}
	return &quietSource{done: make(chan struct{})}, nil
}

func (s *quietSource) read() ([]message, error) {
	<-s.done
	return nil, fmt.Errorf("stopped")
}

func (s *quietSource) close() error {
	close(s.done)
	return nil
}
