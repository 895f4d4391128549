// Package tilt follows the namespaces Tilt deploys to, as Tilt's API reports
// them: the pods its KubernetesDiscovery objects found, and what its
// KubernetesApply objects deployed.
package tilt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// object is the part of the Tilt API objects we read. KubernetesDiscovery,
// KubernetesApply and UIResource share it: their fields do not collide.
type object struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name              string  `json:"name"`
		DeletionTimestamp *string `json:"deletionTimestamp"`
	} `json:"metadata"`
	Spec struct {
		Watches []watchRef `json:"watches"` // KubernetesDiscovery
		YAML    string     `json:"yaml"`    // KubernetesApply: what the Tiltfile deploys
	} `json:"spec"`
	Status struct {
		Pods []struct {
			Namespace string `json:"namespace"`
		} `json:"pods"` // KubernetesDiscovery
		ResultYAML string `json:"resultYAML"` // KubernetesApply: what the cluster returned
		Order      *int32 `json:"order"`      // UIResource: the Tiltfile's order
	} `json:"status"`
	Items []object `json:"items"` // when it is a List
}

// watchRef is one object a KubernetesDiscovery watches. Tilt fills UID for
// objects it deployed, and records the cluster-scoped ones (a Namespace, a
// CRD) under "default"; entries without a UID come from the Tiltfile's YAML
// before (or without) a deploy.
type watchRef struct {
	Namespace string `json:"namespace"`
	UID       string `json:"uid"`
}

// manifest is the part of a deployed or declared object we read.
type manifest struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Namespace string `json:"namespace"`
		UID       string `json:"uid"`
	} `json:"metadata"`
}

// Namespaces returns the namespaces Tilt deploys to, from a `tilt get
// kubernetesdiscovery,kubernetesapply,uiresource -o json` List, in the
// order of Tilt's resources (the Tiltfile's order), so the first
// workload's namespace comes first.
//
// For each resource: the namespaces of the pods Tilt discovered; while it
// has none, the namespaces it watches, leaving out those that only
// cluster-scoped objects put there (Tilt files a Namespace object under
// "default", which would otherwise take the short names).
func Namespaces(list []byte) ([]string, error) {
	var top object
	if err := json.Unmarshal(list, &top); err != nil {
		return nil, fmt.Errorf("reading Tilt's objects: %w", err)
	}
	items := top.Items
	if top.Kind != "List" {
		items = []object{top}
	}
	type resource struct {
		name       string
		order      int64
		namespaces []string
	}
	order := map[string]int32{}
	applies := map[string]*applied{}
	var discoveries []object
	for _, it := range items {
		if it.Metadata.DeletionTimestamp != nil {
			continue
		}
		switch it.Kind {
		case "KubernetesDiscovery":
			discoveries = append(discoveries, it)
		case "KubernetesApply":
			// One that cannot be read counts as absent (every watch of
			// its resource counts) rather than stopping the follower.
			if a, err := readApply(it.Spec.YAML, it.Status.ResultYAML); err == nil {
				applies[it.Metadata.Name] = a
			}
		case "UIResource":
			if it.Status.Order != nil {
				order[it.Metadata.Name] = *it.Status.Order
			}
		}
	}
	var resources []resource
	for _, d := range discoveries {
		r := resource{name: d.Metadata.Name, order: 1 << 32} // unordered ones last
		if o, ok := order[r.name]; ok {
			r.order = int64(o)
		}
		for _, p := range d.Status.Pods {
			r.namespaces = appendNew(r.namespaces, p.Namespace)
		}
		if len(r.namespaces) == 0 {
			a := applies[r.name] // KubernetesApply and KubernetesDiscovery share the resource's name
			for _, w := range d.Spec.Watches {
				if a.keeps(w) {
					r.namespaces = appendNew(r.namespaces, w.Namespace)
				}
			}
		}
		slices.Sort(r.namespaces)
		resources = append(resources, r)
	}
	slices.SortStableFunc(resources, func(a, b resource) int {
		if a.order != b.order {
			return int(min(max(a.order-b.order, -1), 1))
		}
		return strings.Compare(a.name, b.name)
	})
	var out []string
	for _, r := range resources {
		for _, ns := range r.namespaces {
			out = appendNew(out, ns)
		}
	}
	return out, nil
}

// applied is what one KubernetesApply tells about its objects.
type applied struct {
	deployed      bool            // the cluster returned objects
	clusterScoped map[string]bool // UIDs of deployed objects that have no namespace
	named         map[string]bool // namespaces the Tiltfile's YAML names
	// defaulted: some namespaced object in the Tiltfile's YAML names no
	// namespace, so Tilt's fallback namespace (the context's, or
	// "default") is really deployed to.
	defaulted bool
}

func readApply(specYAML, resultYAML string) (*applied, error) {
	a := &applied{clusterScoped: map[string]bool{}, named: map[string]bool{}}
	result, err := manifests(resultYAML)
	if err != nil {
		return nil, err
	}
	for _, m := range result {
		a.deployed = true
		if m.Metadata.Namespace == "" && m.Metadata.UID != "" {
			a.clusterScoped[m.Metadata.UID] = true
		}
	}
	spec, err := manifests(specYAML)
	if err != nil {
		return nil, err
	}
	for _, m := range spec {
		switch {
		case m.Metadata.Namespace != "":
			a.named[m.Metadata.Namespace] = true
		case !clusterScoped(m.Kind):
			a.defaulted = true
		}
	}
	return a, nil
}

// keeps says whether a watched namespace is one the resource deploys to.
// Without its KubernetesApply (a resource Tilt discovers by label only)
// every watch counts.
func (a *applied) keeps(w watchRef) bool {
	if w.Namespace == "" {
		return false
	}
	if a == nil {
		return true
	}
	if w.UID != "" {
		return !a.clusterScoped[w.UID]
	}
	// Deployed: every namespaced object has a watch with its UID, so one
	// without is the fallback namespace of a cluster-scoped object.
	if a.deployed {
		return false
	}
	return a.named[w.Namespace] || a.defaulted
}

// clusterScoped says whether a built-in kind has no namespace, for the
// Tiltfile's YAML before it is deployed (after, the cluster's answer says).
// An unknown kind counts as namespaced: forwarding one namespace too many
// for a moment is better than missing one.
func clusterScoped(kind string) bool {
	switch kind {
	case "Namespace", "Node", "PersistentVolume", "StorageClass", "VolumeAttachment", "CSIDriver", "CSINode",
		"CustomResourceDefinition", "APIService", "ClusterRole", "ClusterRoleBinding", "PriorityClass",
		"RuntimeClass", "IngressClass", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
		"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "MutatingAdmissionPolicy",
		"MutatingAdmissionPolicyBinding", "CertificateSigningRequest", "FlowSchema", "PriorityLevelConfiguration",
		"ClusterTrustBundle", "DeviceClass", "ResourceSlice", "IPAddress", "ServiceCIDR":
		return true
	}
	return false
}

// manifests decodes a YAML stream of objects (documents separated by ---).
func manifests(stream string) ([]manifest, error) {
	if strings.TrimSpace(stream) == "" {
		return nil, nil
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader([]byte(stream)), 4096)
	var out []manifest
	for {
		var m manifest
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if m.Kind != "" {
			out = append(out, m)
		}
	}
}

// Order is the namespace set kubefwd gets: shortNamesFrom first (it gets
// the short names, whether Tilt deploys there yet or not), then what Tilt
// deploys to in Tilt's order, then the extra namespaces.
func Order(followed []string, shortNamesFrom string, extra []string) []string {
	var out []string
	if shortNamesFrom != "" {
		out = append(out, shortNamesFrom)
	}
	for _, ns := range followed {
		out = appendNew(out, ns)
	}
	for _, ns := range extra {
		out = appendNew(out, ns)
	}
	return out
}

func appendNew(list []string, s string) []string {
	if s == "" || slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
