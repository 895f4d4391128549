package cli

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/kubefwd/kubefwd/internal/loopback"
)

// Under sudo, kubefwd acts for the user who ran it: their kubeconfig, their
// state directory, their control socket, files owned by them.

// invokingUser is the user kubefwd acts for: the one who ran sudo, if
// this is root under sudo, else the current one.
func invokingUser() (uid, gid int) {
	uid, gid = os.Getuid(), os.Getgid()
	if uid == 0 {
		if u, err := strconv.Atoi(os.Getenv("SUDO_UID")); err == nil && u > 0 {
			uid = u
			if g, err := strconv.Atoi(os.Getenv("SUDO_GID")); err == nil {
				gid = g
			}
		}
	}
	return uid, gid
}

// sudoUserKubeconfig finds the invoking user's kubeconfig when running
// under plain sudo, which resets $HOME and $KUBECONFIG.
func (o *svcOptions) sudoUserKubeconfig() string {
	if os.Geteuid() != 0 || os.Getenv("KUBECONFIG") != "" {
		return ""
	}
	u := sudoUser()
	if u == nil {
		return ""
	}
	path := filepath.Join(u.HomeDir, ".kube", "config")
	if _, err := os.Stat(path); err != nil {
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

// defaultStateFile is in the invoking user's state directory, owned by
// them even when kubefwd runs under sudo.
func defaultStateFile() (string, *loopback.Owner) {
	return stateFileFor(os.Geteuid(), os.Getenv, user.LookupId, os.UserHomeDir)
}

// stateFileFor is defaultStateFile with the process's view of the world
// passed in, so the sudo case can be tested without a real sudo user.
func stateFileFor(euid int, getenv func(string) string, lookup func(string) (*user.User, error), home func() (string, error)) (string, *loopback.Owner) {
	if uid := getenv("SUDO_UID"); euid == 0 && uid != "" && uid != "0" {
		if u, err := lookup(uid); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			return filepath.Join(u.HomeDir, ".local", "state", "kubefwd", "addresses.json"), &loopback.Owner{UID: uid, GID: gid}
		}
	}
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "kubefwd", "addresses.json"), nil
	}
	h, err := home()
	if err != nil {
		return filepath.Join(os.TempDir(), "kubefwd-addresses.json"), nil
	}
	return filepath.Join(h, ".local", "state", "kubefwd", "addresses.json"), nil
}
