package vm

import "context"

// Saver is a Machine whose state can be saved for warm starts (see package
// template): Host's machines are; a test's fake need not be, and then the
// driver starts every task cold.
type Saver interface {
	// SaveState pauses the guest and writes its device state to path.
	SaveState(ctx context.Context, path string) error
}

// SaveState saves through QMP.
func (m *qemuMachine) SaveState(ctx context.Context, path string) error {
	if m.qmp == nil {
		return ErrNoControl
	}
	return m.qmp.SaveState(ctx, path)
}
