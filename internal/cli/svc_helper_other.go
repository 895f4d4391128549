//go:build !unix

package cli

import (
	"context"
	"errors"

	"github.com/kubefwd/kubefwd/internal/engine"
)

// connectHelper: the helper needs Unix sockets with descriptor passing,
// which this platform does not have.
func (o *svcOptions) connectHelper(context.Context, string) (helperSession, error) {
	if o.helperMode == "always" {
		return nil, UsageError{Err: errors.New("--helper=always: the privileged helper is not available on this platform")}
	}
	return nil, nil
}

func helperAliases(helperSession) engine.AddressAliases { return nil }

func defaultHelperSocket() string { return "" }
