package plugin

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/solstice-ci/solstice/internal/contract"
)

// guestPlan returns the plan file to upload: the task's plan with the
// image's guest settings (PATH additions, default shell, work root) in
// Plan.Guest. Only the driver knows the image, so it, not the shim, fills
// them in, replacing (or, for an image with none, removing) whatever a
// plan brought. A plan that does not decode goes up unchanged: the agent
// reports why it cannot run it, as before.
func (l *launch) guestPlan() (string, error) {
	g := l.img.Guest().Settings()
	src := l.inputs.Plan
	if src == "" {
		return src, nil
	}
	f, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("read the plan: %w", err)
	}
	defer f.Close()
	p, err := contract.DecodePlanAuto(f)
	if err != nil {
		l.log.Warn("plan does not decode; uploading it unchanged for the agent to report", "error", err)
		return src, nil
	}
	// The debug request is the driver's: the guest gets no one's keys.
	l.debug, p.Debug = p.Debug, nil
	if g == nil && p.Guest == nil && l.debug == nil {
		return src, nil // nothing to add or take away
	}
	p.Guest = g
	var buf bytes.Buffer
	if err := contract.EncodePlan(&buf, p); err != nil {
		return "", err
	}
	dst := filepath.Join(l.st.VMDir, "plan.json")
	if err := os.WriteFile(dst, buf.Bytes(), 0o600); err != nil {
		return "", fmt.Errorf("write the plan with the image's guest settings: %w", err)
	}
	return dst, nil
}
