package forge

import "github.com/solstice-ci/solstice/guest/events"

// Conclusions is how a forge writes each conclusion a guest reports (for
// a step or a job), in the forge's own type.
type Conclusions[T any] struct {
	Success, Failure, Cancelled, Skipped T
}

// Of is the forge's word for conclusion c. A conclusion the guest should
// not have sent is a failure: nothing unknown may pass as a success.
func (cs Conclusions[T]) Of(c string) T {
	switch c {
	case events.Success:
		return cs.Success
	case events.Cancelled:
		return cs.Cancelled
	case events.Skipped:
		return cs.Skipped
	}
	return cs.Failure
}
