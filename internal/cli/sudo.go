package cli

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/kubefwd/kubefwd/internal/asuser"
	"github.com/kubefwd/kubefwd/internal/cmdio"
)

// Under sudo, kubefwd acts for the user who ran it: their kubeconfig, their
// state directory, their control socket. Root's rights are for the hosts
// file and the ports only: every file in a place the user controls, and
// every path they name, is used with their rights (package asuser).

func invokingUser() (uid, gid int) { return cmdio.InvokingUser() }

// actingUser is the identity file operations for the invoking user run
// with: nil when kubefwd is not root acting for someone else.
func actingUser() *asuser.User {
	if os.Geteuid() != 0 {
		return nil
	}
	uid, gid := invokingUser()
	if uid == 0 {
		return nil
	}
	u, _ := asuser.Lookup(uid, gid)
	return u
}

// sudoUserKubeconfig finds the invoking user's kubeconfig when running
// under plain sudo, which resets $HOME and $KUBECONFIG.
func (o *svcOptions) sudoUserKubeconfig() string {
	if os.Geteuid() != 0 || os.Getenv("KUBECONFIG") != "" || o.user == nil || o.user.Home == "" {
		return ""
	}
	path := filepath.Join(o.user.Home, ".kube", "config")
	if err := o.user.Do(func() error { _, err := os.Stat(path); return err }); err != nil {
		return ""
	}
	return path
}

func sudoUser() *user.User {
	uid := os.Getenv("SUDO_UID")
	if uid == "" || uid == "0" {
		return nil
	}
	u, err := user.LookupId(uid)
	if err != nil {
		return nil
	}
	return u
}

// defaultStateFile is in the acting user's state directory (theirs under
// sudo, written with their rights).
func defaultStateFile(u *asuser.User) string {
	return stateFileFor(u, os.Getenv, os.UserHomeDir)
}

// stateFileFor is defaultStateFile with the process's view of the world
// passed in, so the sudo case can be tested without a real sudo user.
func stateFileFor(u *asuser.User, getenv func(string) string, home func() (string, error)) string {
	if u != nil {
		// Root's $XDG_STATE_HOME (or the user's, kept by sudo -E) is not
		// trusted here: the user's home from the user database is.
		if u.Home != "" {
			return filepath.Join(u.Home, ".local", "state", "kubefwd", "addresses.json")
		}
		return filepath.Join(os.TempDir(), "kubefwd-"+strconv.Itoa(u.UID), "addresses.json")
	}
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "kubefwd", "addresses.json")
	}
	h, err := home()
	if err != nil {
		return filepath.Join(os.TempDir(), "kubefwd-addresses.json")
	}
	return filepath.Join(h, ".local", "state", "kubefwd", "addresses.json")
}
