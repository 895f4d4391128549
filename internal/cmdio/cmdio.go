// Package cmdio is what every kubefwd command shares: the standard
// streams, the errors that choose an exit code, and who the command acts
// for. It is small on purpose: the verbs that only steer a running
// instance (package ctl) build on it without linking the engine.
package cmdio

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"
)

// Streams are the standard streams a command talks to: results go to Out,
// information and errors to Err.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
	// Log and Level, when set, are the process's logger (which main also
	// gave to klog, once, before anything ran) and its level, which -v
	// raises. When nil, commands log to Err at their own level.
	Log   *slog.Logger
	Level *slog.LevelVar
	// LogSink, when set, is where Log writes; kubefwd svc --tui moves it
	// into the view's pane.
	LogSink *LogSink
}

// UsageError marks an error in the user's input; Main exits with ExitUsage.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// NoArgs rejects positional arguments as a usage error.
func NoArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return UsageError{Err: fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), args[0])}
	}
	return nil
}

// InvokingUser is the user kubefwd acts for: the one who ran sudo, if
// this is root under sudo, else the current one.
func InvokingUser() (uid, gid int) {
	uid, gid = os.Getuid(), os.Getgid()
	if uid == 0 {
		if u, err := strconv.Atoi(os.Getenv("SUDO_UID")); err == nil && u > 0 {
			uid = u
			gid = u // a missing SUDO_GID must not leave root's group
			if g, err := strconv.Atoi(os.Getenv("SUDO_GID")); err == nil {
				gid = g
			}
		}
	}
	return uid, gid
}

// NeedTerminal refuses to draw a full-screen view where there is no
// terminal to draw it on.
func NeedTerminal(what string) error {
	if !term.IsTerminal(os.Stdin.Fd()) || !term.IsTerminal(os.Stdout.Fd()) {
		return UsageError{Err: errors.New(what + " needs a terminal on its standard input and output (for scripts: kubefwd status, events)")}
	}
	return nil
}
