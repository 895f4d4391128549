// Package mcpserver is `kubefwd mcp`: a Model Context Protocol server on
// stdio that lets an AI assistant see and steer a running kubefwd through
// its control API — no root and no key (the control socket's peer check
// decides who may steer). It finds the instance on every call, so it works
// from the moment one runs and through its restarts.
package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/envvars"
)

// Instance is what the server asks of a running kubefwd (the control
// client).
type Instance interface {
	Status(ctx context.Context) (api.Status, error)
	Refresh(ctx context.Context, services ...string) ([]string, error)
	Pause(ctx context.Context, services ...string) ([]string, error)
	Resume(ctx context.Context, services ...string) ([]string, error)
	ChangeNamespaces(ctx context.Context, op string, namespaces []string) (api.NamespaceChange, error)
	Logs(ctx context.Context, req api.LogsRequest, w io.Writer) error
	RecentEvents(ctx context.Context, n int) ([]api.Event, error)
}

// Connect finds the running instance; its error says how to start one.
type Connect func() (Instance, error)

// maxLogBytes bounds a log handed to an assistant.
const maxLogBytes = 256 << 10

// eventsAsked is how many of the instance's recent events are looked at
// (it keeps 500).
const eventsAsked = 500

// Server is the MCP server.
type Server struct {
	connect Connect
	version string
}

// New returns a server that reaches its instance through connect.
func New(connect Connect, version string) *Server {
	return &Server{connect: connect, version: version}
}

// Run serves MCP on t (stdio for `kubefwd mcp`) until the client leaves or
// ctx ends.
func (s *Server) Run(ctx context.Context, t mcp.Transport) error {
	return s.mcp().Run(ctx, t)
}

// recent returns the instance's last events, of service only when given
// (svc or ns/svc), at most max, oldest first.
func (s *Server) recent(ctx context.Context, service string, limit int) ([]api.Event, error) {
	inst, err := s.connect()
	if err != nil {
		return nil, err
	}
	all, err := inst.RecentEvents(ctx, eventsAsked)
	if err != nil {
		return nil, err
	}
	out := []api.Event{}
	for _, ev := range all {
		if service == "" || ev.Service == service || ev.Namespace+"/"+ev.Service == service {
			out = append(out, ev)
		}
	}
	return out[max(0, len(out)-limit):], nil
}

// Tool inputs and outputs. Field descriptions become the tools' schemas.
type (
	noInput      struct{}
	serviceInput struct {
		Service string `json:"service" jsonschema:"the Service: a name kubefwd wrote (web, web.demo2), svc.ns, ns/svc or ctx/ns/svc"`
	}
	servicesInput struct {
		Services []string `json:"services,omitempty" jsonschema:"Services by name (web, web.demo2, ns/svc); none means all"`
	}
	namespacesInput struct {
		Namespaces []string `json:"namespaces" jsonschema:"namespaces: name (in every context) or context/name"`
	}
	eventsInput struct {
		Service string `json:"service,omitempty" jsonschema:"only this Service's events (svc or ns/svc)"`
		Max     int    `json:"max,omitempty" jsonschema:"at most this many, the most recent (default 50)"`
	}
	logsInput struct {
		Service   string `json:"service" jsonschema:"the Service whose pod's log to read"`
		Pod       string `json:"pod,omitempty" jsonschema:"one of its ready pods (default: the first)"`
		Container string `json:"container,omitempty" jsonschema:"the container, when the pod has several"`
		Tail      int64  `json:"tail,omitempty" jsonschema:"the last N lines (default 100)"`
	}
	envInput struct {
		Services []string `json:"services,omitempty" jsonschema:"only these Services (default all)"`
		Format   string   `json:"format,omitempty" jsonschema:"shell, dotenv or json (default dotenv)"`
	}

	port struct {
		Name     string `json:"name,omitempty"`
		Port     int32  `json:"port"`
		Local    int32  `json:"local"`
		Protocol string `json:"protocol,omitempty"` // UDP; TCP when empty
		Connect  string `json:"connect,omitempty"`  // host:port to dial
		Relay    string `json:"relay,omitempty"`    // why it goes through the relay pod, and how that stands
	}
	service struct {
		Context   string   `json:"context"`
		Namespace string   `json:"namespace"`
		Service   string   `json:"service"`
		Pod       string   `json:"pod,omitempty"`
		State     string   `json:"state"`
		Reason    string   `json:"reason,omitempty"`
		Address   string   `json:"address,omitempty"`
		Names     []string `json:"names,omitempty"`
		Ports     []port   `json:"ports,omitempty"`
	}
	servicesOutput struct {
		Services []service `json:"services"`
	}
	serviceDetail struct {
		Forwards     []api.Forward `json:"forwards"`
		RecentEvents []api.Event   `json:"recentEvents"`
	}
	changedOutput struct {
		Services []string `json:"services"`
	}
	namespacesOutput struct {
		Namespaces []api.ContextNamespaces `json:"namespaces"`
	}
	eventsOutput struct {
		Events []api.Event `json:"events"`
	}
	logsOutput struct {
		Log       string `json:"log"`
		Truncated bool   `json:"truncated,omitempty"`
	}
	envOutput struct {
		Variables map[string]string `json:"variables"`
		Text      string            `json:"text"`
	}
)

func (s *Server) mcp() *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "kubefwd", Version: s.version}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "list_services", Description: "Every Service the running kubefwd forwards: state and why, loopback address, hostnames, ports and where to connect."},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, servicesOutput, error) {
			st, err := s.status(ctx)
			if err != nil {
				return nil, servicesOutput{}, err
			}
			return nil, servicesOutput{Services: summarize(st.Forwards)}, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "get_service", Description: "One Service in detail: its forwards (ports, endpoints, traffic, failures, last error) and its recent events."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in serviceInput) (*mcp.CallToolResult, serviceDetail, error) {
			st, err := s.status(ctx)
			if err != nil {
				return nil, serviceDetail{}, err
			}
			var out serviceDetail
			for _, i := range api.Match(st.Forwards, in.Service) {
				out.Forwards = append(out.Forwards, st.Forwards[i])
			}
			if len(out.Forwards) == 0 {
				return nil, out, fmt.Errorf("no forwarded Service matches %q; list_services shows them, diagnose_service says why one is missing", in.Service)
			}
			out.RecentEvents, err = s.recent(ctx, out.Forwards[0].Namespace+"/"+out.Forwards[0].Service, 50)
			return nil, out, err
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "diagnose_service", Description: "Why a name does not answer: not forwarded and why, paused, no ready pod, RBAC, failing tunnels, a hosts file entry of the user's own — each with what to do."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in serviceInput) (*mcp.CallToolResult, Diagnosis, error) {
			st, err := s.status(ctx)
			if err != nil {
				return nil, Diagnosis{}, err
			}
			return nil, diagnose(st, in.Service), nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "refresh", Description: "Reopen the tunnels of the named Services (all when none), the fix for a wedged forward; addresses and names stay."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in servicesInput) (*mcp.CallToolResult, changedOutput, error) {
			return changed(s.do(ctx, func(in2 Instance) ([]string, error) { return in2.Refresh(ctx, in.Services...) }))
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "pause_service", Description: "Stop forwarding the named Services live (their listeners and hostnames go) until resume_service."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in servicesInput) (*mcp.CallToolResult, changedOutput, error) {
			return changed(s.do(ctx, func(in2 Instance) ([]string, error) { return in2.Pause(ctx, in.Services...) }))
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "resume_service", Description: "Forward paused Services again, at the addresses they had."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in servicesInput) (*mcp.CallToolResult, changedOutput, error) {
			return changed(s.do(ctx, func(in2 Instance) ([]string, error) { return in2.Resume(ctx, in.Services...) }))
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "list_namespaces", Description: "The namespaces forwarded, per context, each with whether it synced, its Service count and any list/watch error (forbidden included)."},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, namespacesOutput, error) {
			st, err := s.status(ctx)
			if err != nil {
				return nil, namespacesOutput{}, err
			}
			return nil, namespacesOutput{Namespaces: st.Namespaces}, nil
		})
	for _, op := range []struct{ name, verb, desc string }{
		{"add_namespaces", api.NamespacesAdd, "Forward these namespaces too, live."},
		{"remove_namespaces", api.NamespacesRemove, "Stop forwarding these namespaces, live: their listeners and hostnames go."},
		{"set_namespaces", api.NamespacesSet, "Forward exactly these namespaces (none: nothing), live."},
	} {
		mcp.AddTool(srv, &mcp.Tool{Name: op.name, Description: op.desc},
			func(ctx context.Context, _ *mcp.CallToolRequest, in namespacesInput) (*mcp.CallToolResult, api.NamespaceChange, error) {
				inst, err := s.connect()
				if err != nil {
					return nil, api.NamespaceChange{}, err
				}
				change, err := inst.ChangeNamespaces(ctx, op.verb, in.Namespaces)
				if change.Added == nil {
					change.Added = []api.NamespaceRef{}
				}
				if change.Removed == nil {
					change.Removed = []api.NamespaceRef{}
				}
				return nil, change, err
			})
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "get_events", Description: "Recent state changes and errors of the running kubefwd (forwards appearing, pods coming and going, failed connections, watch errors), oldest first."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in eventsInput) (*mcp.CallToolResult, eventsOutput, error) {
			n := in.Max
			if n <= 0 {
				n = 50
			}
			events, err := s.recent(ctx, in.Service, n)
			return nil, eventsOutput{Events: events}, err
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "get_pod_logs", Description: "The log of one ready pod of a forwarded Service, read by kubefwd with its own credentials (the last 100 lines by default, at most 256 KiB)."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in logsInput) (*mcp.CallToolResult, logsOutput, error) {
			inst, err := s.connect()
			if err != nil {
				return nil, logsOutput{}, err
			}
			tail := in.Tail
			if tail <= 0 {
				tail = 100
			}
			var b limited
			b.max = maxLogBytes
			err = inst.Logs(ctx, api.LogsRequest{Service: in.Service, Pod: in.Pod, Container: in.Container, Tail: tail}, &b)
			return nil, logsOutput{Log: b.String(), Truncated: b.truncated}, err
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "connection_env", Description: "Environment variables that point a local program at the forwarded Services: NAME_HOST, NAME_ADDR, NAME_PORT, NAME_PORT_<port name>."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in envInput) (*mcp.CallToolResult, envOutput, error) {
			st, err := s.status(ctx)
			if err != nil {
				return nil, envOutput{}, err
			}
			format := in.Format
			if format == "" {
				format = envvars.FormatDotenv
			}
			vars, err := envvars.For(st, in.Services)
			if err != nil {
				return nil, envOutput{}, err
			}
			text, err := envvars.Format(vars, format)
			if err != nil {
				return nil, envOutput{}, err
			}
			out := envOutput{Variables: map[string]string{}, Text: text}
			for _, v := range vars {
				out.Variables[v.Name] = v.Value
			}
			return nil, out, nil
		})
	srv.AddResource(&mcp.Resource{URI: "kubefwd://status", Name: "status", MIMEType: "application/json",
		Description: "The running kubefwd's full status: every forward, namespace, tunnel and API counter."},
		func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			st, err := s.status(ctx)
			if err != nil {
				return nil, err
			}
			return jsonResource(req.Params.URI, st)
		})
	srv.AddResource(&mcp.Resource{URI: "kubefwd://events", Name: "events", MIMEType: "application/json",
		Description: "The running kubefwd's recent events, oldest first."},
		func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			events, err := s.recent(ctx, "", eventsAsked)
			if err != nil {
				return nil, err
			}
			return jsonResource(req.Params.URI, events)
		})
	return srv
}

func (s *Server) status(ctx context.Context) (api.Status, error) {
	inst, err := s.connect()
	if err != nil {
		return api.Status{}, err
	}
	return inst.Status(ctx)
}

func (s *Server) do(_ context.Context, fn func(Instance) ([]string, error)) ([]string, error) {
	inst, err := s.connect()
	if err != nil {
		return nil, err
	}
	return fn(inst)
}

func changed(done []string, err error) (*mcp.CallToolResult, changedOutput, error) {
	if done == nil {
		done = []string{}
	}
	return nil, changedOutput{Services: done}, err
}

// summarize is list_services' view of the forwards.
func summarize(forwards []api.Forward) []service {
	out := make([]service, 0, len(forwards))
	for _, f := range forwards {
		sv := service{Context: f.Context, Namespace: f.Namespace, Service: f.Service, Pod: f.Pod,
			State: f.State, Reason: f.Reason, Address: f.Address, Names: f.Names}
		for _, p := range f.Ports {
			pt := port{Name: p.Name, Port: p.Port, Local: p.Local, Relay: p.Relay}
			if p.Protocol == "UDP" {
				pt.Protocol = p.Protocol
			}
			if len(f.Names) > 0 {
				pt.Connect = f.Names[0] + ":" + strconv.Itoa(int(p.Local))
			}
			sv.Ports = append(sv.Ports, pt)
		}
		out = append(out, sv)
	}
	return out
}

func jsonResource(uri string, v any) (*mcp.ReadResourceResult, error) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: "application/json", Text: string(data)}}}, nil
}

// limited keeps the first max bytes written and notes the rest was cut.
type limited struct {
	bytes.Buffer
	max       int
	truncated bool
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.max - l.Len(); len(p) > room {
		l.truncated = true
		l.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return l.Buffer.Write(p)
}
