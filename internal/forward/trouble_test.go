package forward_test

import (
	"errors"
	"fmt"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubefwd/kubefwd/internal/forward"
)

// Only the API server's own refusal counts as forbidden, however wrapped;
// text that merely says so does not.
func TestForbidden(t *testing.T) {
	pods := schema.GroupResource{Resource: "pods"}
	refused := apierrors.NewForbidden(pods, "web-1", errors.New(`User "me" cannot create resource "pods/portforward"`))
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{refused, true},
		{fmt.Errorf("tunnel to pod demo/web-1: %w", refused), true},
		{apierrors.NewNotFound(pods, "web-1"), false},
		{apierrors.NewUnauthorized("token expired"), false},
		{errors.New("unable to upgrade connection: pods \"web-1\" is forbidden"), false},
		{nil, false},
	} {
		if got := forward.Forbidden(tc.err); got != tc.want {
			t.Errorf("Forbidden(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
