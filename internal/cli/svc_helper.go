//go:build unix

package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/kubefwd/kubefwd/internal/engine"
	"github.com/kubefwd/kubefwd/internal/helper"
)

// connectHelper starts a session with the privileged helper when svc
// should use one: --helper=always, or auto for a process that is not root
// and writes the default hosts file. nil means forward in-process; why a
// helper was not used is kept in o.helperErr for the privilege errors that
// may follow.
func (o *svcOptions) connectHelper(ctx context.Context, instance string) (helperSession, error) {
	always := o.helperMode == "always"
	if o.helperMode == "never" || !always && (os.Geteuid() == 0 || o.hostsPathSet) {
		return nil, nil
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	c, err := helper.Dial(dctx, o.helperSocket, instance, o.log)
	cancel()
	if err != nil {
		var refused helper.NotAllowedError
		switch {
		case always && errors.As(err, &refused):
			return nil, PrivilegeError{err}
		case always && errors.Is(err, helper.ErrUnavailable):
			return nil, PrivilegeError{fmt.Errorf("--helper=always: %w; install one with: sudo kubefwd helper install", err)}
		case always:
			return nil, err
		}
		if !errors.Is(err, helper.ErrUnavailable) {
			o.helperErr = err
		}
		o.log.Debug("not using the kubefwd helper", "err", err)
		return nil, nil
	}
	if o.hostsPathSet && c.HostsPath() != o.hostsPath {
		c.Close()
		return nil, UsageError{Err: fmt.Errorf("--hosts-path %s: the helper at %s writes %s; leave --hosts-path out to use it", o.hostsPath, o.helperSocket, c.HostsPath())}
	}
	return c, nil
}

// helperAliases is the session's loopback aliases where the platform needs
// them (macOS), else nil.
func helperAliases(s helperSession) engine.AddressAliases {
	if c, ok := s.(*helper.Client); ok && runtime.GOOS == "darwin" {
		return c.Aliases()
	}
	return nil
}

func defaultHelperSocket() string { return helper.DefaultSocket() }
