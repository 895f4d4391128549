package helper

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubefwd/kubefwd/test/needs"
)

func TestSystemdUnitFile(t *testing.T) {
	c := InstallConfig{Binary: InstallBinary, Socket: "/run/kubefwd/helper.sock", HostsPath: "/etc/hosts", Allow: []string{"alice", "bob smith"}, AllowDomains: []string{"dev"}}
	unit := SystemdUnitFile(c)
	for _, want := range []string{
		`ExecStart=/usr/local/lib/kubefwd/kubefwd helper run --socket /run/kubefwd/helper.sock --hosts-path /etc/hosts --allow-user alice --allow-user "bob smith" --allow-domain dev`,
		"Restart=on-failure\n",
		"MemoryMax=256M\n",
		"TasksMax=256\n",
		"CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
		"NoNewPrivileges=yes\n",
		"ProtectSystem=strict\n",
		"ReadWritePaths=/etc/hosts\n",
		"ProtectHome=yes\n",
		"RuntimeDirectory=kubefwd\n",
		"RestrictAddressFamilies=AF_UNIX AF_INET\n",
		"SystemCallFilter=~@privileged\n",
		"SystemCallErrorNumber=EPERM\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	// Nothing more than it needs.
	for _, bad := range []string{"CAP_SYS_ADMIN", "CAP_NET_ADMIN", "ReadWritePaths=/etc\n", "IPAddressDeny"} {
		if strings.Contains(unit, bad) {
			t.Errorf("unit has %q", bad)
		}
	}

	verifyUnit(t, c)
}

// The packages' unit: the package manager's binary, the allowed users from
// the administrator's file, and a missing or empty list not retried.
func TestPackagedSystemdUnitFile(t *testing.T) {
	c := PackageConfig()
	unit := SystemdUnitFile(c)
	for _, want := range []string{
		"\nEnvironmentFile=-/etc/default/kubefwd-helper\n",
		"\nExecStart=/usr/bin/kubefwd helper run --socket /run/kubefwd/helper.sock --hosts-path /etc/hosts --allow-user=${KUBEFWD_HELPER_ALLOW_USERS}\n",
		"\nRestartPreventExitStatus=2\n",
		"# systemctl enable --now kubefwd-helper.service\n",
		"CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
		"ReadWritePaths=/etc/hosts\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	// Everything else is the installed unit's, line for line.
	installed := SystemdUnitFile(InstallConfig{Binary: c.Binary, Socket: c.Socket, HostsPath: c.HostsPath})
	if got, want := sandbox(unit), sandbox(installed); got != want {
		t.Errorf("the packaged unit's sandbox differs from the installed one's:\n%s\nwant\n%s", got, want)
	}
	verifyUnit(t, c)
}

// sandbox is a unit's [Service] section less its ExecStart, EnvironmentFile
// and RestartPreventExitStatus lines.
func sandbox(unit string) string {
	_, service, _ := strings.Cut(unit, "[Service]")
	var keep []string
	for _, line := range strings.Split(service, "\n") {
		if !strings.HasPrefix(line, "ExecStart=") && !strings.HasPrefix(line, "EnvironmentFile=") && !strings.HasPrefix(line, "RestartPreventExitStatus=") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// verifyUnit runs systemd-analyze verify on c's unit.
func verifyUnit(t *testing.T, c InstallConfig) {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		needs.Skip(t, "systemd-analyze is not installed (Debian: apt-get install systemd)")
	}
	// verify wants the binary to exist; any executable will do.
	dir := t.TempDir()
	self, _ := os.Executable()
	c.Binary = self
	path := filepath.Join(dir, SystemdName)
	if err := os.WriteFile(path, []byte(SystemdUnitFile(c)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze verify %s: %v\n%s", path, err, out)
	}
	// verify reports some problems (unknown keys, bad values) on its
	// output without failing.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, SystemdName) {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}

func TestLaunchdPlistFile(t *testing.T) {
	p := LaunchdPlistFile(InstallConfig{Binary: InstallBinary, Socket: "/var/run/kubefwd/helper.sock", HostsPath: "/etc/hosts", Allow: []string{"a&b"}})
	for _, want := range []string{"<string>" + LaunchdLabel + "</string>", "<string>/usr/local/lib/kubefwd/kubefwd</string>", "<string>a&amp;b</string>", "<key>KeepAlive</key>"} {
		if !strings.Contains(p, want) {
			t.Errorf("plist lacks %q:\n%s", want, p)
		}
	}
}
