package kube

import (
	"net/http"
	"sync/atomic"
	"time"
)

// OutageRetry makes the watches' requests wait out an API server outage
// instead of failing. client-go's reflector backs off after each failed
// list or watch, doubling up to [30, 60) s, and informers do not let that
// be changed: after an outage of half a minute their caches stayed stale
// for up to a minute more, and kubefwd sent new connections to pods a
// rollout had long replaced (found by the soak). A watch or list of what
// kubefwd follows that cannot reach the server is instead tried again
// every RetryEvery until it can or its context ends, so an outage costs
// the reflector one failure (the broken watch), not a growing backoff.
//
// Only once the server has answered this client at least once: at start, an
// unreachable context is reported at once, as before. Other requests (a
// pod's log, the namespace browser's list, tunnels) fail as they did.
type OutageRetry struct {
	// RetryEvery is the pause between tries (default 500 ms).
	RetryEvery time.Duration
	reached    atomic.Bool
}

// followed are the resources kubefwd's informers list and watch.
var followed = map[string]bool{"services": true, "endpointslices": true}

// Wrap is a rest.Config WrapTransport.
func (o *OutageRetry) Wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		verb, resource := classify(req)
		waits := (verb == "watch" || verb == "list") && followed[resource] && req.Body == nil
		for {
			resp, err := rt.RoundTrip(req)
			if err == nil && resp.StatusCode != http.StatusServiceUnavailable {
				o.reached.Store(true)
				return resp, nil
			}
			// Unreachable (refused, reset, timed out) or not ready yet.
			if !waits || !o.reached.Load() || req.Context().Err() != nil {
				return resp, err
			}
			if resp != nil {
				resp.Body.Close()
			}
			every := o.RetryEvery
			if every <= 0 {
				every = 500 * time.Millisecond
			}
			t := time.NewTimer(every)
			select {
			case <-req.Context().Done():
				t.Stop()
				return nil, req.Context().Err()
			case <-t.C:
			}
		}
	})
}
