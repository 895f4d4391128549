package tilt

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// testdata/get-namespace-project.json is the real output of `tilt get
// kubernetesdiscovery,kubernetesapply,uiresource -o json` (Tilt v0.37.6-dev,
// built from its source, against the devcluster) for a project whose YAML
// holds a Namespace "tiltns", a Deployment and Service "shop" in it, and a
// Deployment and Service "web" in "demo2". Tilt filed the Namespace object
// under "default" in the watches of its "uncategorized" resource.
// testdata/watch-kubernetesdiscovery.json is what `tilt get
// kubernetesdiscovery -o json --watch` printed while a pod was replaced.
func TestNamespacesFromRealTilt(t *testing.T) {
	data, err := os.ReadFile("testdata/get-namespace-project.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Namespaces(data)
	if err != nil {
		t.Fatal(err)
	}
	// shop is Tilt's first resource (order 2), web its third (order 4);
	// the Namespace object's "default" is not a namespace deployed to.
	if want := []string{"tiltns", "demo2"}; !slices.Equal(got, want) {
		t.Errorf("Namespaces = %v, want %v", got, want)
	}
	// The capture really has the "default" watch the old code took.
	if !strings.Contains(string(data), `"namespace": "default"`) {
		t.Fatal("the capture lost its default watch")
	}
}

// The watch prints objects one after another; each is a KubernetesDiscovery
// Namespaces can read on its own.
func TestWatchOutputDecodes(t *testing.T) {
	data, err := os.ReadFile("testdata/watch-kubernetesdiscovery.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	n := 0
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			t.Fatal(err)
		}
		if _, err := Namespaces(raw); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n < 2 {
		t.Fatalf("the capture holds %d objects", n)
	}
}

// Objects for the synthetic cases, shaped like Tilt's.
type (
	pod     struct{ ns string }
	watch   struct{ ns, uid string }
	tiltObj map[string]any
)

func disco(name string, watches []watch, pods ...pod) tiltObj {
	var ws, ps []any
	for _, w := range watches {
		m := map[string]any{"namespace": w.ns, "name": "x"}
		if w.uid != "" {
			m["uid"] = w.uid
		}
		ws = append(ws, m)
	}
	for _, p := range pods {
		ps = append(ps, map[string]any{"namespace": p.ns, "name": "p", "phase": "Running"})
	}
	return tiltObj{"kind": "KubernetesDiscovery", "metadata": map[string]any{"name": name},
		"spec": map[string]any{"watches": ws}, "status": map[string]any{"pods": ps}}
}

func apply(name, specYAML, resultYAML string) tiltObj {
	return tiltObj{"kind": "KubernetesApply", "metadata": map[string]any{"name": name},
		"spec": map[string]any{"yaml": specYAML}, "status": map[string]any{"resultYAML": resultYAML}}
}

func ui(name string, order int) tiltObj {
	return tiltObj{"kind": "UIResource", "metadata": map[string]any{"name": name}, "status": map[string]any{"order": order}}
}

func deleted(o tiltObj) tiltObj {
	o["metadata"].(map[string]any)["deletionTimestamp"] = "2026-11-28T06:00:00Z"
	return o
}

func listOf(items ...tiltObj) []byte {
	b, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	return b
}

const (
	nsYAML       = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n"
	nsResult     = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  uid: ns-uid\n"
	deployYAML   = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: shop\n  namespace: shop\n"
	deployResult = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: shop\n  namespace: shop\n  uid: dep-uid\n"
	cmYAML       = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"
	crdYAML      = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\n"
)

func TestNamespaces(t *testing.T) {
	tests := []struct {
		name string
		list []byte
		want []string
	}{{
		name: "pods decide over watches",
		list: listOf(disco("shop", []watch{{"shop", "dep-uid"}, {"other", "svc-uid"}}, pod{"shop"}), apply("shop", deployYAML, deployResult)),
		want: []string{"shop"},
	}, {
		name: "no pods yet: the watches of deployed objects",
		list: listOf(disco("shop", []watch{{"shop", "dep-uid"}}), apply("shop", deployYAML, deployResult)),
		want: []string{"shop"},
	}, {
		name: "a deployed Namespace object is not a namespace deployed to",
		list: listOf(disco("uncategorized", []watch{{"default", "ns-uid"}}), apply("uncategorized", nsYAML, nsResult)),
		want: nil,
	}, {
		// With the context's namespace "dev", Tilt also adds a watch
		// without UID for the Namespace object's fallback namespace.
		name: "deployed: a watch without UID is a fallback, not a deploy",
		list: listOf(disco("uncategorized", []watch{{"default", "ns-uid"}, {"dev", ""}}), apply("uncategorized", nsYAML, nsResult)),
		want: nil,
	}, {
		name: "not deployed yet: a Namespace or CRD names no namespace",
		list: listOf(disco("uncategorized", []watch{{"default", ""}}), apply("uncategorized", nsYAML+"---\n"+crdYAML, "")),
		want: nil,
	}, {
		name: "not deployed yet: a ConfigMap without namespace goes to the fallback",
		list: listOf(disco("uncategorized", []watch{{"dev", ""}}), apply("uncategorized", nsYAML+"---\n"+cmYAML, "")),
		want: []string{"dev"},
	}, {
		name: "not deployed yet: namespaces the YAML names",
		list: listOf(disco("shop", []watch{{"shop", ""}, {"default", ""}}), apply("shop", nsYAML+"---\n"+deployYAML, "")),
		want: []string{"shop"},
	}, {
		name: "a deployed object really in default counts",
		list: listOf(disco("api", []watch{{"default", "api-uid"}}),
			apply("api", "kind: Service\nmetadata:\n  name: api\n", "kind: Service\nmetadata:\n  name: api\n  namespace: default\n  uid: api-uid\n")),
		want: []string{"default"},
	}, {
		name: "no KubernetesApply (discovered by label): every watch counts",
		list: listOf(disco("legacy", []watch{{"default", ""}, {"legacy", "u"}})),
		want: []string{"default", "legacy"},
	}, {
		name: "an unreadable KubernetesApply counts as absent",
		list: listOf(disco("shop", []watch{{"shop", "dep-uid"}}), apply("shop", "kind: [unclosed", "")),
		want: []string{"shop"},
	}, {
		name: "Tilt's order, not the alphabet",
		list: listOf(disco("zeta", nil, pod{"zeta"}), disco("alpha", nil, pod{"alpha"}), disco("mid", nil, pod{"mid"}),
			ui("alpha", 3), ui("zeta", 1), ui("mid", 2)),
		want: []string{"zeta", "mid", "alpha"},
	}, {
		name: "same order: by name; unordered last",
		list: listOf(disco("b", nil, pod{"nb"}), disco("a", nil, pod{"na"}), disco("c", nil, pod{"nc"}), ui("b", 1), ui("a", 1)),
		want: []string{"na", "nb", "nc"},
	}, {
		name: "one resource's namespaces sorted, each once",
		list: listOf(disco("a", nil, pod{"z"}, pod{"y"}, pod{"z"}), disco("b", nil, pod{"y"}, pod{"x"}), ui("a", 1), ui("b", 2)),
		want: []string{"y", "z", "x"},
	}, {
		name: "deleted objects are gone",
		list: listOf(deleted(disco("old", nil, pod{"old"})), disco("new", nil, pod{"new"})),
		want: []string{"new"},
	}, {
		name: "a single object, not a List",
		list: func() []byte { b, _ := json.Marshal(disco("one", nil, pod{"one"})); return b }(),
		want: []string{"one"},
	}, {
		name: "nothing deployed",
		list: listOf(),
		want: nil,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Namespaces(tt.list)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Namespaces = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNamespacesBadInput(t *testing.T) {
	for _, in := range []string{"", "not json", `{"items": 3}`} {
		if _, err := Namespaces([]byte(in)); err == nil || !strings.Contains(err.Error(), "reading Tilt's objects") {
			t.Errorf("Namespaces(%q) = %v, want a clear error", in, err)
		}
	}
}

func TestOrder(t *testing.T) {
	tests := []struct {
		followed []string
		short    string
		extra    []string
		want     []string
	}{
		{[]string{"a", "b"}, "", nil, []string{"a", "b"}},
		{[]string{"a", "b"}, "b", nil, []string{"b", "a"}},
		{[]string{"a"}, "c", nil, []string{"c", "a"}}, // first even before Tilt deploys there
		{[]string{"a", "b"}, "", []string{"db", "a"}, []string{"a", "b", "db"}},
		{nil, "", []string{"db"}, []string{"db"}},
		{nil, "", nil, nil},
	}
	for _, tt := range tests {
		if got := Order(tt.followed, tt.short, tt.extra); !slices.Equal(got, tt.want) {
			t.Errorf("Order(%q, %q, %q) = %q, want %q", tt.followed, tt.short, tt.extra, got, tt.want)
		}
	}
}

func FuzzNamespaces(f *testing.F) {
	if data, err := os.ReadFile("testdata/get-namespace-project.json"); err == nil {
		f.Add(data)
	}
	f.Add(listOf(disco("a", []watch{{"x", ""}}), apply("a", nsYAML, "")))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Namespaces(data)
		if err != nil {
			return
		}
		for i, ns := range got {
			if ns == "" || slices.Contains(got[:i], ns) {
				t.Fatalf("Namespaces gave an empty or repeated namespace: %q", got)
			}
		}
	})
}
