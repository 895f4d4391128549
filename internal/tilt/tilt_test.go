package tilt

import (
	"reflect"
	"testing"
)

func TestNamespaces(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		wantErr  bool
	}{
		{name: "empty list", in: `{"apiVersion":"v1","items":[],"kind":"List","metadata":{"resourceVersion":""}}`, want: nil},
		{name: "list", in: `{"apiVersion":"v1","kind":"List","items":[
			{"kind":"KubernetesDiscovery","metadata":{"name":"web"},"spec":{"watches":[{"namespace":"demo2","name":"web","uid":"1"},{"namespace":"demo","name":"web-config"}]}},
			{"kind":"KubernetesDiscovery","metadata":{"name":"db"},"spec":{"watches":[{"namespace":"demo","name":"db"}]}},
			{"kind":"KubernetesDiscovery","metadata":{"name":"gone","deletionTimestamp":"2026-11-21T10:00:00Z"},"spec":{"watches":[{"namespace":"old"}]}}]}`,
			want: []string{"demo", "demo2"}},
		{name: "single object", in: `{"kind":"KubernetesDiscovery","metadata":{"name":"web"},"spec":{"watches":[{"namespace":"payments"}]}}`, want: []string{"payments"}},
		{name: "no watches", in: `{"kind":"KubernetesDiscovery","metadata":{"name":"web"},"spec":{}}`, want: nil},
		{name: "not json", in: `Error: connection refused`, wantErr: true},
	}
	for _, tt := range tests {
		got, err := Namespaces([]byte(tt.in))
		if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: Namespaces = %v, %v; want %v (error %v)", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}
