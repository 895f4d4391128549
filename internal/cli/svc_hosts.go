package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubefwd/kubefwd/internal/asuser"
	"github.com/kubefwd/kubefwd/internal/hosts"
)

// systemHostsFile reports whether path is the machine's hosts file, the
// one file root writes for the user under sudo.
func systemHostsFile(path string) bool {
	abs, err := filepath.Abs(path)
	return err == nil && abs == hosts.DefaultPath()
}

// checkHostsPath refuses, under sudo, a --hosts-path the invoking user
// could not write themselves: root writing wherever the user points it
// (/etc/sudoers.d, /etc/cron.d) would hand them root.
func (o *svcOptions) checkHostsPath() error {
	if o.user == nil || systemHostsFile(o.hostsPath) {
		return nil
	}
	err := o.user.Do(func() error {
		f, err := os.OpenFile(o.hostsPath, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		return f.Close()
	})
	if errors.Is(err, os.ErrNotExist) {
		return UsageError{Err: fmt.Errorf("--hosts-path %s: no such file", o.hostsPath)}
	}
	if err != nil {
		return PrivilegeError{fmt.Errorf("--hosts-path %s: %s cannot write it; under sudo kubefwd writes only the system hosts file (%s) or a file you could write yourself",
			o.hostsPath, o.user, hosts.DefaultPath())}
	}
	return nil
}

// hostsWriter is the hosts file as the engine uses it. Another file than
// the system's is the user's own, so under sudo it is written with their
// rights (its lock and temporary files too), never root's.
func (o *svcOptions) hostsWriter(f *hosts.File) asUserHosts {
	if systemHostsFile(f.Path) {
		return asUserHosts{f: f}
	}
	return asUserHosts{f: f, user: o.user}
}

// asUserHosts runs every operation of a hosts file with user's rights
// (nil: the process's own).
type asUserHosts struct {
	f    *hosts.File
	user *asuser.User
}

func (h asUserHosts) Apply(entries []hosts.Entry) (skipped []hosts.Skipped, err error) {
	err = h.user.Do(func() (err error) { skipped, err = h.f.Apply(entries); return err })
	return skipped, err
}

func (h asUserHosts) Remove() error { return h.user.Do(h.f.Remove) }

// Watch follows the file (its directory watched with user's rights), so
// kubefwd can put its block back when another program drops it.
func (h asUserHosts) Watch(ctx context.Context, changed func()) error {
	return h.f.Watch(ctx, h.user.Do, changed)
}

func (h asUserHosts) RemoveStale() (gone []hosts.Owner, err error) {
	err = h.user.Do(func() (err error) { gone, err = h.f.RemoveStale(); return err })
	return gone, err
}
