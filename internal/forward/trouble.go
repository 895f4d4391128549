package forward

import (
	"errors"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Trouble is what a port's connections last learned about reaching its
// pods: set while they cannot, cleared by the first connection that gets
// through. It is what status shows as "retrying in N s" or "forbidden".
// The zero value is ready to use; safe for concurrent use.
type Trouble struct {
	// OnChange, if set (before the Trouble is used), is called when
	// trouble begins, ends, or turns into or out of forbidden; not for
	// every retry. It must not block.
	OnChange func(TroubleState)

	mu      sync.Mutex
	err     error     // the last failure; nil when the last connection got through
	since   time.Time // when the failures began
	retryAt time.Time // when a waiting connection tries again; zero when none does
}

// TroubleState is a snapshot of a Trouble.
type TroubleState struct {
	Err   error     // nil: no trouble
	Since time.Time // when it began
	// RetryAt is when the latest connection waiting to retry tries again;
	// zero when that connection has given up.
	RetryAt time.Time
	// Forbidden: the API server refused the port-forward (RBAC).
	Forbidden bool
}

// State returns the snapshot.
func (t *Trouble) State() TroubleState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return TroubleState{Err: t.err, Since: t.since, RetryAt: t.retryAt, Forbidden: Forbidden(t.err)}
}

// Reset forgets the trouble: the endpoints changed, and the new ones
// deserve a fresh judgement.
func (t *Trouble) Reset() { t.ok() }

func (t *Trouble) ok() {
	t.mu.Lock()
	had := t.err != nil
	t.err, t.since, t.retryAt = nil, time.Time{}, time.Time{}
	t.mu.Unlock()
	if had && t.OnChange != nil {
		t.OnChange(TroubleState{})
	}
}

// failed records err; retryAt is when the connection tries again (zero:
// it gave up).
func (t *Trouble) failed(err error, retryAt time.Time) {
	t.mu.Lock()
	changed := t.err == nil || Forbidden(t.err) != Forbidden(err)
	if t.err == nil {
		t.since = time.Now()
	}
	t.err, t.retryAt = err, retryAt
	st := TroubleState{Err: t.err, Since: t.since, RetryAt: t.retryAt, Forbidden: Forbidden(t.err)}
	t.mu.Unlock()
	if changed && t.OnChange != nil {
		t.OnChange(st)
	}
}

// Forbidden says whether err is the API server refusing a port-forward
// (RBAC: no create, or get, on pods/portforward).
func Forbidden(err error) bool {
	var status *apierrors.StatusError
	return errors.As(err, &status) && apierrors.IsForbidden(status)
}
