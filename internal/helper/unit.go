package helper

import (
	"fmt"
	"html"
	"strings"
)

// Where `kubefwd helper install` puts things. The binary is copied to a
// root-owned directory: a root service must never run a file its users can
// rewrite (such as one in ~/go/bin), or the helper's limits would mean
// nothing.
const (
	InstallBinary  = "/usr/local/lib/kubefwd/kubefwd"
	SystemdUnit    = "/etc/systemd/system/kubefwd-helper.service"
	SystemdName    = "kubefwd-helper.service"
	LaunchdLabel   = "dev.kubefwd.helper"
	LaunchdPlist   = "/Library/LaunchDaemons/dev.kubefwd.helper.plist"
	LaunchdLogFile = "/var/log/kubefwd-helper.log"
)

// Where the Linux packages (.deb, .rpm, .apk from make dist) put things.
// The package manager owns the binary and the unit, both root's; the
// package cannot know who may use the helper, so the unit reads the
// allowed users from an administrator's file, and nothing is enabled
// until the administrator says so.
const (
	PackageBinary          = "/usr/bin/kubefwd"
	PackageUnit            = "/usr/lib/systemd/system/kubefwd-helper.service"
	PackageEnvironmentFile = "/etc/default/kubefwd-helper"
	PackageAllowUsersVar   = "KUBEFWD_HELPER_ALLOW_USERS"
)

// PackageConfig is the helper as the Linux packages install it.
func PackageConfig() InstallConfig {
	return InstallConfig{
		Binary: PackageBinary, Socket: "/run/kubefwd/helper.sock", HostsPath: "/etc/hosts",
		EnvironmentFile: PackageEnvironmentFile, AllowUsersVar: PackageAllowUsersVar,
	}
}

// InstallConfig is what the service definitions are rendered from.
type InstallConfig struct {
	Binary    string   // absolute path of the installed kubefwd
	Socket    string   // absolute path of the helper socket
	HostsPath string   // the hosts file the helper writes
	Allow     []string // user names (or uids) allowed
	// AllowDomains are the domains under which the policy's refusals are
	// lifted (--allow-domain).
	AllowDomains []string
	// EnvironmentFile, if set, is a file systemd reads variables from
	// before it starts the helper, if it exists (the packages' unit: an
	// administrator's settings, which no package upgrade overwrites).
	EnvironmentFile string
	// AllowUsersVar, if set, names a variable (of EnvironmentFile) holding
	// more allowed users, comma-separated: --allow-user=${VAR}. Empty or
	// unset, it allows nobody, and the helper refuses to start.
	AllowUsersVar string
}

// Args is the helper's command line.
func (c InstallConfig) Args() []string {
	args := []string{c.Binary, "helper", "run", "--socket", c.Socket, "--hosts-path", c.HostsPath}
	for _, u := range c.Allow {
		args = append(args, "--allow-user", u)
	}
	for _, d := range c.AllowDomains {
		args = append(args, "--allow-domain", d)
	}
	return args
}

// SystemdUnitFile renders the systemd unit. The sandbox grants exactly
// what the helper does: bind ports below 1024 (CAP_NET_BIND_SERVICE, the
// only capability), write the hosts file (root owns it, so no DAC
// override is needed; writers lock its directory, which read-only is
// enough for), and serve its socket in
// /run/kubefwd. Everything else of the file system is read-only or
// hidden. MemoryMax= and TasksMax= bound what a flood of allowed users
// can cost the machine (the helper's own limits bound everyone else);
// hitting them kills the helper, which restarts, and clients reconnect.
// IPAddressDeny= and similar socket filters are deliberately
// absent: the listeners the helper binds are used by its clients, and a
// filter attached to them would cut their traffic.
func SystemdUnitFile(c InstallConfig) string {
	var b strings.Builder
	w := func(s string) { b.WriteString(s + "\n") }
	execStart := systemdQuote(c.Args())
	if c.AllowUsersVar == "" {
		w("# Installed by `kubefwd helper install`; removed by `kubefwd helper uninstall`.")
	} else {
		// ${VAR} (braces) is one word, whatever it holds; the helper
		// splits it at commas.
		execStart += " --allow-user=${" + c.AllowUsersVar + "}"
		w("# Installed by the kubefwd package, which enables nothing. To use it, allow users in")
		w("# " + c.EnvironmentFile + " (" + c.AllowUsersVar + "=alice,bob), then run")
		w("# systemctl enable --now " + SystemdName)
	}
	w("[Unit]")
	w("Description=kubefwd privileged helper (loopback listeners and hosts entries for kubefwd users)")
	w("Documentation=https://github.com/kubefwd/kubefwd#the-privileged-helper")
	w("")
	w("[Service]")
	w("Type=simple")
	if c.EnvironmentFile != "" {
		w("EnvironmentFile=-" + c.EnvironmentFile) // "-": a missing file is no error
	}
	w("ExecStart=" + execStart)
	w("Restart=on-failure")
	if c.AllowUsersVar != "" {
		// An allow-list not set yet, or naming an unknown user, is a usage
		// error (exit 2) that restarting cannot fix: fail once, with the
		// reason in the journal.
		w("RestartPreventExitStatus=2")
	}
	w("RestartSec=1")
	w("MemoryMax=256M")
	w("TasksMax=256")
	w("RuntimeDirectory=kubefwd") // the socket's directory, /run/kubefwd
	w("RuntimeDirectoryMode=0755")
	w("UMask=0022")
	w("CapabilityBoundingSet=CAP_NET_BIND_SERVICE")
	w("AmbientCapabilities=")
	w("NoNewPrivileges=yes")
	w("ProtectSystem=strict")
	w("ReadWritePaths=" + systemdQuote([]string{c.HostsPath}))
	w("ProtectHome=yes")
	w("PrivateTmp=yes")
	w("PrivateDevices=yes")
	w("ProtectKernelTunables=yes")
	w("ProtectKernelModules=yes")
	w("ProtectKernelLogs=yes")
	w("ProtectControlGroups=yes")
	w("ProtectClock=yes")
	w("ProtectHostname=yes")
	w("RestrictAddressFamilies=AF_UNIX AF_INET")
	w("RestrictNamespaces=yes")
	w("RestrictRealtime=yes")
	w("RestrictSUIDSGID=yes")
	w("LockPersonality=yes")
	w("MemoryDenyWriteExecute=yes")
	w("SystemCallArchitectures=native")
	w("SystemCallFilter=@system-service")
	w("SystemCallFilter=~@privileged")
	w("SystemCallErrorNumber=EPERM")
	w("")
	w("[Install]")
	w("WantedBy=multi-user.target")
	return b.String()
}

// systemdQuote joins words for a unit file, quoting those that need it.
func systemdQuote(words []string) string {
	out := make([]string, len(words))
	for i, w := range words {
		if w != "" && !strings.ContainsAny(w, " \t\"'\\;$%") {
			out[i] = w
			continue
		}
		r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `$$`, `%`, `%%`)
		out[i] = `"` + r.Replace(w) + `"`
	}
	return strings.Join(out, " ")
}

// LaunchdPlistFile renders the macOS launchd daemon definition.
func LaunchdPlistFile(c InstallConfig) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>` + LaunchdLabel + `</string>
	<key>ProgramArguments</key>
	<array>
`)
	for _, a := range c.Args() {
		fmt.Fprintf(&b, "\t\t<string>%s</string>\n", html.EscapeString(a))
	}
	b.WriteString(`	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<true/>
	<key>StandardErrorPath</key>
	<string>` + LaunchdLogFile + `</string>
</dict>
</plist>
`)
	return b.String()
}
