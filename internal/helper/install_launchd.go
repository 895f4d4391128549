//go:build unix

package helper

import "context"

// launchd installs the helper as a launchd daemon (macOS).
type launchd struct{}

func (launchd) definition(c InstallConfig) (string, string) { return LaunchdPlist, LaunchdPlistFile(c) }

func (launchd) prepare(string, InstallConfig) error { return nil }

func (launchd) running(string) error { return nil }

func (launchd) start(_ context.Context, run func(string, ...string) error) error {
	_ = run("launchctl", "bootout", "system/"+LaunchdLabel) // an older one, if any
	return run("launchctl", "bootstrap", "system", LaunchdPlist)
}

func (launchd) stop(_ context.Context, run func(string, ...string) error) {
	_ = run("launchctl", "bootout", "system/"+LaunchdLabel)
}

func (launchd) reload(context.Context, func(string, ...string) error) {}
