package ctl

import (
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/kubefwd/kubefwd/internal/cmdio"
	"github.com/kubefwd/kubefwd/internal/mcpserver"
)

func newMCPCommand(version string) *cobra.Command {
	var instance string
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "Serve the Model Context Protocol on stdio, so that an AI assistant can see and steer a running kubefwd",
		Long: `Runs an MCP server on standard input and output for an AI assistant (Claude,
Cursor, VS Code, …). It steers the running kubefwd through its control socket:
no root, no key. It finds the instance on every call: started before kubefwd, its
tools say that none runs, and work as soon as one does.

Tools: list_services, get_service, diagnose_service, refresh, pause_service,
resume_service, list_namespaces, add_namespaces, remove_namespaces,
set_namespaces, get_events, get_pod_logs, connection_env. Resources:
kubefwd://status, kubefwd://events.`,
		Args: cmdio.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv := mcpserver.New(func() (mcpserver.Instance, error) { return connect(instance) }, version)
			return srv.Run(cmd.Context(), &mcp.StdioTransport{})
		},
	}
	instanceFlag(cmd, &instance)
	return cmd
}
