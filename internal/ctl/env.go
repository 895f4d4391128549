package ctl

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kubefwd/kubefwd/internal/cmdio"
	"github.com/kubefwd/kubefwd/internal/envvars"
)

func newEnvCommand(streams cmdio.Streams) *cobra.Command {
	var instance, format string
	cmd := &cobra.Command{
		Use:   "env [SERVICE...]",
		Short: "Print connection variables (WEB_HOST, WEB_PORT, …) for the Services a running kubefwd forwards",
		Long: `Prints, for each forwarded Service (only the named ones, when given), where a
local program reaches it: NAME_HOST (the name kubefwd wrote), NAME_ADDR (its
loopback address), NAME_PORT (its first port) and NAME_PORT_<PORT NAME> for each
named port. NAME follows the hostname: web → WEB, web.demo2 → WEB_DEMO2,
db-0.db → DB_0_DB. A SERVICE is web, web.demo2, demo/web or ctx/demo/web.

  eval "$(kubefwd env)"                  # in a shell
  kubefwd env --format dotenv > .env     # for docker compose, IDE run configurations
  kubefwd env web --format json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := envvars.Format(nil, format); err != nil {
				return cmdio.UsageError{Err: fmt.Errorf("--format: %w", err)}
			}
			c, err := connect(instance)
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			vars, err := envvars.For(st, args)
			if err != nil {
				return cmdio.UsageError{Err: err}
			}
			out, err := envvars.Format(vars, format)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(streams.Out, out)
			return err
		},
	}
	cmd.Flags().StringVar(&format, "format", envvars.FormatShell, "shell (export NAME='value'), dotenv (NAME=value) or json")
	instanceFlag(cmd, &instance)
	return cmd
}
