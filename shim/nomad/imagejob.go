package nomad

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
)

// Image actions are how solstice image pull and verify reach the clients'
// image caches: a short batch job with one task group per chosen client
// (pinned by ${node.unique.id}), each a solstice-vm task whose config
// says action = "pull" or "verify"; the driver only fetches or re-checks
// the image and the task exits (driver/plugin/imageaction.go).
const (
	ImagePull   = "pull"
	ImageVerify = "verify"
)

// The driver's task events for the actions' outcomes (kept in step with
// driver/plugin's Msg… constants; the shims do not import the driver).
const (
	msgImageCached    = "Image cached"
	msgImageVerified  = "Image verified"
	msgImageNotCached = "Image not cached"
)

// ImageTarget is one client an image action runs on.
type ImageTarget struct {
	NodeID, Node string
}

// ImageResult is how an image action went on one client.
type ImageResult struct {
	ImageTarget
	// Outcome is "cached" (pull), "ok" or "not cached" (verify) when the
	// task succeeded, "failed" otherwise.
	Outcome string
	Detail  string // the driver's or Nomad's words, bounded
}

// Failed reports whether the action failed on this client.
func (r ImageResult) Failed() bool { return r.Outcome == "failed" }

// ImageJob builds the batch job for action on the targets. Its name is
// solstice-image-<action>-<image>; the id adds a random suffix, so two
// operators never replace each other's job.
func ImageJob(action, image, namespace string, targets []ImageTarget) (*api.Job, error) {
	suffix := make([]byte, 3)
	if _, err := rand.Read(suffix); err != nil {
		return nil, fmt.Errorf("job id: %w", err)
	}
	name := "solstice-image-" + action + "-" + image
	job := api.NewBatchJob(name+"-"+hex.EncodeToString(suffix), name, "", 50)
	job.Datacenters = []string{"*"}
	if namespace != "" {
		job.Namespace = &namespace
	}
	job.Meta = map[string]string{"solstice.image": image, "solstice.image_action": action}
	for _, t := range targets {
		job.AddTaskGroup(imageGroup(action, image, t))
	}
	return job, nil
}

// imageGroup is one client's task group: pinned to the node, never
// restarted or moved elsewhere (a failure there is that node's answer),
// asking for next to nothing so a busy client still runs it.
func imageGroup(action, image string, t ImageTarget) *api.TaskGroup {
	g := api.NewTaskGroup(groupName(t), 1)
	g.Constrain(api.NewConstraint("${node.unique.id}", "=", t.NodeID))
	g.RestartPolicy = &api.RestartPolicy{Attempts: ptr(0), Mode: ptr("fail")}
	g.ReschedulePolicy = &api.ReschedulePolicy{Attempts: ptr(0), Unlimited: ptr(false)}
	g.EphemeralDisk = &api.EphemeralDisk{SizeMB: ptr(10)}
	task := api.NewTask("image", "solstice-vm")
	task.Config = map[string]any{"image": image, "action": action}
	task.Resources = &api.Resources{CPU: ptr(20), MemoryMB: ptr(16)}
	task.KillTimeout = ptr(5 * time.Second)
	// The task writes next to nothing; the logs must fit the small disk.
	task.LogConfig = &api.LogConfig{MaxFiles: ptr(1), MaxFileSizeMB: ptr(1)}
	g.AddTask(task)
	return g
}

var unsafeGroupChars = regexp.MustCompile(`[^a-zA-Z0-9_-]+`)

// groupName names a node's group: its name (readable in nomad job
// status) and its id's first 8 characters (names need not be unique).
func groupName(t ImageTarget) string {
	id := t.NodeID
	if len(id) > 8 {
		id = id[:8]
	}
	return unsafeGroupChars.ReplaceAllString(t.Node, "-") + "-" + id
}

func ptr[T any](v T) *T { return &v }

// RunImageJob registers job, follows its allocations until every group has
// an outcome (or ctx ends), telling progress about each client's download
// as it goes, and purges the job. targets are the clients job was built for.
func (c *Client) RunImageJob(ctx context.Context, job *api.Job, targets []ImageTarget, progress func(node, msg string)) ([]ImageResult, error) {
	q := (&api.WriteOptions{}).WithContext(ctx)
	resp, _, err := c.API.Jobs().Register(job, q)
	if err != nil {
		return nil, fmt.Errorf("register job %s: %w", *job.ID, err)
	}
	defer c.purgeImageJob(ctx, *job.ID)
	w := imageWatch{c: c, job: *job.ID, targets: map[string]ImageTarget{}, results: map[string]ImageResult{},
		said: map[string]string{}, progress: progress}
	for _, t := range targets {
		w.targets[groupName(t)] = t
	}
	if err := w.unplaced(ctx, resp.EvalID); err != nil {
		return nil, err
	}
	return w.follow(ctx)
}

// purgeImageJob removes the job, also after an interrupt: it has no use
// once its tasks have answered.
func (c *Client) purgeImageJob(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, _, err := c.API.Jobs().Deregister(id, true, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		c.log().Warn("could not purge the image job", "job", id, "error", err)
	}
}

// imageWatch follows one image job.
type imageWatch struct {
	c        *Client
	job      string
	targets  map[string]ImageTarget // by group
	results  map[string]ImageResult // by group, once known
	said     map[string]string      // by group: the last progress told
	progress func(node, msg string)
}

// unplaced waits for the job's first evaluation and records every group
// Nomad could not place (the driver unhealthy there, no room) as failed:
// their evaluation would otherwise wait for ever.
func (w *imageWatch) unplaced(ctx context.Context, evalID string) error {
	for {
		ev, _, err := w.c.API.Evaluations().Info(evalID, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return fmt.Errorf("read evaluation %s: %w", evalID, err)
		}
		if ev.Status != "pending" {
			for group, m := range ev.FailedTGAllocs {
				w.results[group] = ImageResult{ImageTarget: w.targets[group], Outcome: "failed",
					Detail: "Nomad could not place the task there: " + placementProblem(m)}
			}
			return nil
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
}

// placementProblem says why Nomad placed nothing, from its metrics.
func placementProblem(m *api.AllocationMetric) string {
	if m == nil {
		return "no reason given"
	}
	var why []string
	for _, counts := range []map[string]int{m.ConstraintFiltered, m.ClassExhausted, m.DimensionExhausted} {
		for k, n := range counts {
			why = append(why, fmt.Sprintf("%s (%d)", k, n))
		}
	}
	if m.NodesEvaluated == 0 {
		why = append(why, "no node was eligible")
	}
	sort.Strings(why)
	return bound(strings.Join(why, "; "))
}

func (w *imageWatch) follow(ctx context.Context) ([]ImageResult, error) {
	for len(w.results) < len(w.targets) {
		allocs, _, err := w.c.API.Jobs().Allocations(w.job, true, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("list allocations of %s: %w", w.job, err)
		}
		for _, a := range allocs {
			w.look(a)
		}
		if len(w.results) == len(w.targets) {
			break
		}
		if err := sleep(ctx, time.Second); err != nil {
			return nil, err
		}
	}
	var out []ImageResult
	for _, r := range w.results {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node+out[i].NodeID < out[j].Node+out[j].NodeID })
	return out, nil
}

// look reads one allocation: new download progress, or its outcome.
func (w *imageWatch) look(a *api.AllocationListStub) {
	t, ok := w.targets[a.TaskGroup]
	if !ok || w.results[a.TaskGroup].Outcome != "" {
		return
	}
	ts := a.TaskStates["image"]
	if msg := downloadMessage(ts); msg != "" && msg != w.said[a.TaskGroup] {
		w.said[a.TaskGroup] = msg
		w.progress(t.Node, "downloading image "+msg)
	}
	if r, done := imageOutcome(a, ts); done {
		r.ImageTarget = t
		w.results[a.TaskGroup] = r
	}
}

// imageOutcome is the result of a finished allocation.
func imageOutcome(a *api.AllocationListStub, ts *api.TaskState) (ImageResult, bool) {
	switch a.ClientStatus {
	case api.AllocClientStatusComplete:
		return successOutcome(ts), true
	case api.AllocClientStatusFailed, api.AllocClientStatusLost:
		return ImageResult{Outcome: "failed", Detail: failureDetail(a, ts)}, true
	}
	return ImageResult{}, false
}

func successOutcome(ts *api.TaskState) ImageResult {
	r := ImageResult{Outcome: "ok"}
	if ts == nil {
		return r
	}
	for _, e := range ts.Events {
		if e.Type != "Driver" {
			continue
		}
		switch e.DriverMessage {
		case msgImageCached:
			r.Outcome = "cached"
		case msgImageVerified:
			r.Outcome = "ok"
		case msgImageNotCached:
			r.Outcome = "not cached"
		default:
			continue
		}
		r.Detail = bound(e.Details["detail"])
	}
	return r
}

// failureDetail is what Nomad recorded about a failed task: the driver's
// start error, or the allocation's own status.
func failureDetail(a *api.AllocationListStub, ts *api.TaskState) string {
	if ts != nil {
		for i := len(ts.Events) - 1; i >= 0; i-- {
			e := ts.Events[i]
			if e.DriverError != "" {
				// The plugin's error crossed gRPC: its wrapping says nothing.
				return bound(strings.TrimPrefix(e.DriverError, "rpc error: code = Unknown desc = "))
			}
			if e.Type == api.TaskDriverFailure || e.Type == api.TaskSetupFailure {
				return bound(e.DisplayMessage)
			}
		}
	}
	if a.ClientDescription != "" {
		return bound(a.ClientDescription)
	}
	return "the allocation " + a.ClientStatus
}

// bound keeps a message to a size a terminal line can take.
func bound(s string) string {
	const limit = 600
	if len(s) > limit {
		return s[:limit] + "…"
	}
	return s
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
