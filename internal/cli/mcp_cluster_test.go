package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
)

// TestMCP drives `kubefwd mcp` with the SDK's own client over a real stdio
// pipe: the tools and their schemas; with no instance yet, a clear error;
// once one runs, each tool's happy path and an error path — without
// restarting the MCP server.
func TestMCP(t *testing.T) {
	c := clustertest.Seeded(t, "demo")
	env, base := controlEnv(t)
	hostsPath := filepath.Join(base, "hosts")
	if err := os.WriteFile(hostsPath, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kubefwdBinary(t), "mcp", "--instance", "assist")
	cmd.Env = env
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()

	tools, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
		schema, _ := json.Marshal(tool.InputSchema)
		if !strings.Contains(string(schema), `"type":"object"`) || tool.Description == "" {
			t.Errorf("%s: input schema %s, description %q", tool.Name, schema, tool.Description)
		}
	}
	slices.Sort(names)
	want := []string{"add_namespaces", "connection_env", "diagnose_service", "get_events", "get_pod_logs", "get_service", "list_namespaces",
		"list_services", "pause_service", "refresh", "remove_namespaces", "resume_service", "set_namespaces"}
	if !slices.Equal(names, want) {
		t.Errorf("tools %v, want %v", names, want)
	}
	for _, tool := range tools.Tools {
		if tool.Name == "get_pod_logs" {
			schema, _ := json.Marshal(tool.InputSchema)
			if !strings.Contains(string(schema), `"required":["service"]`) {
				t.Errorf("get_pod_logs does not require a service: %s", schema)
			}
		}
	}

	call := func(name string, args any) (*mcp.CallToolResult, string) {
		t.Helper()
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var text strings.Builder
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				text.WriteString(tc.Text)
			}
		}
		return res, text.String()
	}
	// structured decodes a result's structured content into v.
	structured := func(res *mcp.CallToolResult, v any) {
		t.Helper()
		data, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatalf("structured content %s: %v", data, err)
		}
	}

	// Nothing runs yet: the tools say so.
	if res, text := call("list_services", map[string]any{}); !res.IsError || !strings.Contains(text, "assist") {
		t.Errorf("list_services with no instance: error %v, %q", res.IsError, text)
	}

	// Now one runs; the same server answers.
	in := startInstanceEnv(t, c, env, hostsPath, filepath.Join(base, "state.json"), "-n", "demo", "-n", "demo2", "--instance", "assist")
	clustertest.WaitAnswers(t, hostsPath, "web", "demo", in.stderr)
	clustertest.WaitAnswers(t, hostsPath, "web.demo2", "demo2", in.stderr)

	res, text := call("list_services", map[string]any{})
	var list struct {
		Services []struct {
			Namespace, Service, State, Address string
			Ports                              []struct{ Connect string }
		}
	}
	structured(res, &list)
	found := false
	for _, s := range list.Services {
		if s.Namespace == "demo" && s.Service == "web" && s.State == "active" && len(s.Ports) == 1 && s.Ports[0].Connect == "web:80" {
			found = true
		}
	}
	if res.IsError || !found {
		t.Errorf("list_services: %s", text)
	}

	if res, text := call("get_service", map[string]any{"service": "web.demo2"}); res.IsError || !strings.Contains(text, `"namespace":"demo2"`) {
		t.Errorf("get_service web.demo2: %s", text)
	}
	if res, text := call("get_service", map[string]any{"service": "nope"}); !res.IsError || !strings.Contains(text, "nope") {
		t.Errorf("get_service nope: error %v, %s", res.IsError, text)
	}
	if res, _ := call("get_service", map[string]any{}); !res.IsError {
		t.Error("get_service without a service was accepted")
	}

	var diag struct {
		Healthy  bool
		Findings []struct{ Problem, Fix string }
	}
	res, text = call("diagnose_service", map[string]any{"service": "web"})
	structured(res, &diag)
	if !diag.Healthy {
		t.Errorf("diagnose_service web: %s", text)
	}
	res, text = call("diagnose_service", map[string]any{"service": "web.payments"})
	structured(res, &diag)
	if diag.Healthy || len(diag.Findings) == 0 || !strings.Contains(diag.Findings[0].Problem, "namespace payments is not forwarded") || !strings.Contains(diag.Findings[0].Fix, "add_namespaces") {
		t.Errorf("diagnose_service web.payments: %s", text)
	}

	if res, text := call("refresh", map[string]any{"services": []string{"web"}}); res.IsError || !strings.Contains(text, "demo/web") {
		t.Errorf("refresh web: %s", text)
	}
	if res, text := call("pause_service", map[string]any{"services": []string{"web.demo2"}}); res.IsError || !strings.Contains(text, "demo2/web") {
		t.Fatalf("pause_service: %s", text)
	}
	res, text = call("diagnose_service", map[string]any{"service": "demo2/web"})
	structured(res, &diag)
	if diag.Healthy || !strings.Contains(text, "paused") || !strings.Contains(text, "resume_service") {
		t.Errorf("diagnose_service of a paused Service: %s", text)
	}
	if res, text := call("resume_service", map[string]any{"services": []string{"demo2/web"}}); res.IsError || !strings.Contains(text, "demo2/web") {
		t.Errorf("resume_service: %s", text)
	}
	clustertest.WaitAnswers(t, hostsPath, "web.demo2", "demo2", in.stderr)

	if res, text := call("remove_namespaces", map[string]any{"namespaces": []string{"demo2"}}); res.IsError || !strings.Contains(text, "demo2") {
		t.Errorf("remove_namespaces demo2: %s", text)
	}
	if res, text := call("add_namespaces", map[string]any{"namespaces": []string{"demo2"}}); res.IsError || !strings.Contains(text, "demo2") {
		t.Errorf("add_namespaces demo2: %s", text)
	}
	if res, text := call("set_namespaces", map[string]any{"namespaces": []string{"Bad Name"}}); !res.IsError {
		t.Errorf("set_namespaces with a bad name: %s", text)
	}
	var nsOut struct {
		Namespaces []struct{ Namespaces []struct{ Namespace string } }
	}
	res, text = call("list_namespaces", map[string]any{})
	structured(res, &nsOut)
	if len(nsOut.Namespaces) != 1 || len(nsOut.Namespaces[0].Namespaces) != 2 {
		t.Errorf("list_namespaces: %s", text)
	}

	// Events: the pause, the resume and the namespace changes, kept by the
	// server since it started following.
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, text := call("get_events", map[string]any{"max": 200})
		if !res.IsError && strings.Contains(text, `"state":"paused"`) && strings.Contains(text, "namespaces-changed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("get_events lacks the pause or the namespace change: %s", text)
		}
		time.Sleep(200 * time.Millisecond)
	}

	if res, text := call("get_pod_logs", map[string]any{"service": "web", "tail": 1}); res.IsError || !strings.Contains(text, "GET / from") {
		t.Errorf("get_pod_logs web: %s", text)
	}
	if res, text := call("get_pod_logs", map[string]any{"service": "web", "pod": "nope"}); !res.IsError || !strings.Contains(text, "not a ready pod") {
		t.Errorf("get_pod_logs of a pod not web's: %s", text)
	}
	var envOut struct{ Variables map[string]string }
	res, text = call("connection_env", map[string]any{"services": []string{"web"}})
	structured(res, &envOut)
	if envOut.Variables["WEB_HOST"] != "web" || envOut.Variables["WEB_PORT"] != "80" {
		t.Errorf("connection_env web: %s", text)
	}

	rr, err := cs.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: "kubefwd://status"})
	if err != nil || len(rr.Contents) != 1 || !strings.Contains(rr.Contents[0].Text, `"forwards"`) {
		t.Errorf("kubefwd://status: %v %+v", err, rr)
	}
	rr, err = cs.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: "kubefwd://events"})
	if err != nil || len(rr.Contents) != 1 || !strings.Contains(rr.Contents[0].Text, `"type"`) {
		t.Errorf("kubefwd://events: %v %+v", err, rr)
	}
}
