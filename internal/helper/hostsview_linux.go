package helper

import (
	"path/filepath"

	"golang.org/x/sys/unix"
)

// hostsView is the hosts file as the helper found it at start. Under the
// systemd sandbox (ProtectSystem=strict, ReadWritePaths=/etc/hosts) the
// file is a bind mount of its own in a read-only /etc; when anything on
// the host replaces /etc/hosts by rename, the kernel detaches that mount
// (or, on older kernels, keeps it on the unlinked file), and the path
// then shows the new file through the read-only /etc: no write of the
// helper's can reach it any more.
type hostsView struct {
	mounted  bool // the file is a mount point of its own
	dev, ino uint64
	mnt      uint64
}

func statx(path string) (unix.Statx_t, error) {
	var st unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_INO|unix.STATX_NLINK|unix.STATX_MNT_ID, &st)
	return st, err
}

// viewHosts records how path looks now.
func viewHosts(path string) hostsView {
	f, err := statx(path)
	if err != nil {
		return hostsView{}
	}
	v := hostsView{dev: uint64(f.Dev_major)<<32 | uint64(f.Dev_minor), ino: f.Ino, mnt: f.Mnt_id}
	if d, err := statx(filepath.Dir(path)); err == nil && f.Mask&d.Mask&unix.STATX_MNT_ID != 0 {
		v.mounted = f.Mnt_id != d.Mnt_id
	}
	return v
}

// replaced reports whether the file at path is no longer the one v saw,
// in a way that matters: a file bound onto the path has been replaced, or
// the file the path shows has no links left. A file that is not a mount
// point changes inode with every atomic write (ours too); that is fine.
func (v hostsView) replaced(path string) bool {
	f, err := statx(path)
	if err != nil {
		return false // a missing file is reported by the write itself
	}
	if f.Nlink == 0 {
		return true
	}
	if !v.mounted {
		return false
	}
	return uint64(f.Dev_major)<<32|uint64(f.Dev_minor) != v.dev || f.Ino != v.ino || f.Mnt_id != v.mnt
}
