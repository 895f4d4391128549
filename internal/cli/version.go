package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/kubefwd/kubefwd/internal/cmdio"
)

// version is stamped by release builds:
// -ldflags "-X github.com/kubefwd/kubefwd/internal/cli.version=v1.2.3".
var version = ""

// Version is kubefwd's version: the stamped one, else the module version
// `go install` recorded, else "devel".
func Version() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "devel"
}

func newVersionCommand(streams Streams) *cobra.Command {
	var short bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print kubefwd's version",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			if short {
				fmt.Fprintln(streams.Out, Version())
				return nil
			}
			fmt.Fprintf(streams.Out, "kubefwd %s (%s, %s/%s)\n", Version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
	cmd.Flags().BoolVar(&short, "short", false, "print only the version number")
	return cmd
}

func noArgs(cmd *cobra.Command, args []string) error { return cmdio.NoArgs(cmd, args) }
