package engine

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDefaultContainer(t *testing.T) {
	pod := func(annotation string, names ...string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{}}}
		if annotation != "" {
			p.Annotations["kubectl.kubernetes.io/default-container"] = annotation
		}
		for _, n := range names {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: n})
		}
		return p
	}
	for _, tt := range []struct {
		pod  *corev1.Pod
		want string
	}{
		{pod("", "app"), "app"},
		{pod("", "app", "sidecar"), "app"},
		{pod("sidecar", "app", "sidecar"), "sidecar"},
		{pod("gone", "app", "sidecar"), "app"}, // an annotation naming no container is ignored
		{pod(""), ""},
	} {
		if got := defaultContainer(tt.pod); got != tt.want {
			t.Errorf("%v: %q, want %q", tt.pod.Spec.Containers, got, tt.want)
		}
	}
}
