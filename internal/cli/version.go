package cli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/kubefwd/kubefwd/internal/cmdio"
)

// Stamped by release builds (make dist), e.g.
// -ldflags "-X github.com/kubefwd/kubefwd/internal/cli.version=v1.2.3
// -X github.com/kubefwd/kubefwd/internal/cli.commit=<sha>
// -X github.com/kubefwd/kubefwd/internal/cli.date=2026-01-02T03:04:05Z".
// They are written by the linker only, never at run time.
var (
	version = ""
	commit  = ""
	date    = "" // the commit's time (RFC 3339, UTC): reproducible builds take no clock
)

// BuildInfo is what `kubefwd version` reports.
type BuildInfo struct {
	Version, Commit, Date, Go, Platform string
}

// Version is kubefwd's version: the stamped one, else the module version
// `go install` recorded, else "devel".
func Version() string { return readBuildInfo().Version }

// readBuildInfo takes the stamped values, else what the go command
// recorded in the binary (the module version of `go install …@v1.2.3`,
// the VCS revision and time of a build in a checkout), else "devel" and
// "unknown".
func readBuildInfo() BuildInfo {
	b := BuildInfo{Version: version, Commit: commit, Date: date, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if info, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			b.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && b.Commit == "":
				b.Commit = s.Value
			case s.Key == "vcs.time" && b.Date == "":
				b.Date = s.Value
			}
		}
	}
	for _, f := range []*string{&b.Commit, &b.Date} {
		if *f == "" {
			*f = "unknown"
		}
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	return b
}

// write prints b, one field a line, for people and for bug reports.
func (b BuildInfo) write(w io.Writer) {
	fmt.Fprintf(w, "kubefwd %s\n", b.Version)
	fmt.Fprintf(w, "  commit:   %s\n", b.Commit)
	fmt.Fprintf(w, "  date:     %s\n", b.Date)
	fmt.Fprintf(w, "  go:       %s\n", b.Go)
	fmt.Fprintf(w, "  os/arch:  %s\n", b.Platform)
}

func newVersionCommand(streams Streams) *cobra.Command {
	var short bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print kubefwd's version, commit, build date, Go version and platform",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			b := readBuildInfo()
			if short {
				fmt.Fprintln(streams.Out, b.Version)
				return nil
			}
			b.write(streams.Out)
			return nil
		},
	}
	cmd.Flags().BoolVar(&short, "short", false, "print only the version")
	return cmd
}

func noArgs(cmd *cobra.Command, args []string) error { return cmdio.NoArgs(cmd, args) }
