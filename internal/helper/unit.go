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

// InstallConfig is what the service definitions are rendered from.
type InstallConfig struct {
	Binary    string   // absolute path of the installed kubefwd
	Socket    string   // absolute path of the helper socket
	HostsPath string   // the hosts file the helper writes
	Allow     []string // user names (or uids) allowed
	// AllowDomains are the domains under which the policy's refusals are
	// lifted (--allow-domain).
	AllowDomains []string
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
	w("# Installed by `kubefwd helper install`; removed by `kubefwd helper uninstall`.")
	w("[Unit]")
	w("Description=kubefwd privileged helper (loopback listeners and hosts entries for kubefwd users)")
	w("Documentation=https://github.com/kubefwd/kubefwd#the-privileged-helper")
	w("")
	w("[Service]")
	w("Type=simple")
	w("ExecStart=" + systemdQuote(c.Args()))
	w("Restart=on-failure")
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
