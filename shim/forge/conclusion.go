package forge

import (
	"github.com/solstice-ci/solstice/internal/contract"
)

// Conclusions is how a forge writes each conclusion a guest reports (for
// a step or a job), in the forge's own type.
type Conclusions[T any] struct {
	Success, Failure, Cancelled, Skipped T
}

// Of is the forge's word for conclusion c. A conclusion the guest should
// not have sent is a failure: nothing unknown may pass as a success.
func (cs Conclusions[T]) Of(c string) T {
	switch c {
	case contract.Success:
		return cs.Success
	case contract.Cancelled:
		return cs.Cancelled
	case contract.Skipped:
		return cs.Skipped
	}
	return cs.Failure
}
