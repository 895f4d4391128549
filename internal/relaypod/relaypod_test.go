package relaypod

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestOrphaned(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	alive := func(pid int) bool { return pid == 100 }
	pod := func(host string, pid int, beat time.Time, phase corev1.PodPhase) *corev1.Pod {
		p := Spec("ns", "img", "i", host, pid, beat)
		p.Status.Phase = phase
		return p
	}
	deleting := pod("here", 999, now, corev1.PodRunning)
	deleting.DeletionTimestamp = &metav1.Time{Time: now}
	tests := []struct {
		name string
		pod  *corev1.Pod
		want string // a part of the reason; "" for not orphaned
	}{
		{"this machine, owner alive", pod("here", 100, now, corev1.PodRunning), ""},
		{"this machine, owner gone", pod("here", 999, now, corev1.PodRunning), "process 999 of this machine"},
		{"another machine, fresh heartbeat", pod("there", 999, now.Add(-time.Minute), corev1.PodRunning), ""},
		{"another machine, stale heartbeat", pod("there", 100, now.Add(-Stale-time.Second), corev1.PodRunning), "not been heard of"},
		{"ended", pod("there", 100, now, corev1.PodSucceeded), "it ended"},
		{"failed", pod("there", 100, now, corev1.PodFailed), "it ended"},
		{"being deleted", deleting, ""},
	}
	for _, tt := range tests {
		got := Orphaned(tt.pod, "here", alive, now)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	// A heartbeat that does not parse counts from creation.
	p := pod("there", 100, now, corev1.PodRunning)
	p.Annotations[HeartbeatAnnotation] = "yesterday"
	p.CreationTimestamp = metav1.Time{Time: now.Add(-time.Hour)}
	if Orphaned(p, "here", alive, now) == "" {
		t.Error("an old relay with a garbled heartbeat is not an orphan")
	}
}

// The spec meets the restricted Pod Security Standard's checks, has
// requests and limits, and names its owner.
func TestSpecIsRestricted(t *testing.T) {
	p := Spec("ns", "img:1", "abc", "host", 42, time.Now())
	sc := p.Spec.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context = %+v", sc)
	}
	if p.Spec.NodeSelector[corev1.LabelOSStable] != "linux" {
		t.Errorf("node selector = %v", p.Spec.NodeSelector)
	}
	if p.Spec.AutomountServiceAccountToken == nil || *p.Spec.AutomountServiceAccountToken {
		t.Error("the relay gets a service account token")
	}
	c := p.Spec.Containers[0]
	csc := c.SecurityContext
	if csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem ||
		csc.Capabilities == nil || len(csc.Capabilities.Drop) != 1 || csc.Capabilities.Drop[0] != "ALL" || len(csc.Capabilities.Add) != 0 {
		t.Errorf("container security context = %+v", csc)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources = %+v", c.Resources)
	}
	if p.Labels[InstanceLabel] != "abc" || p.Annotations[HostAnnotation] != "host" || p.Annotations[PIDAnnotation] != "42" {
		t.Errorf("owner = %v %v", p.Labels, p.Annotations)
	}
	if Image("v1.2.3") != DefaultImage+":v1.2.3" || Image("devel") != DefaultImage+":latest" {
		t.Error("Image")
	}
}
