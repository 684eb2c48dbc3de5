package forgejo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	runnerv1 "code.gitea.io/actions-proto-go/runner/v1"
	"code.gitea.io/actions-proto-go/runner/v1/runnerv1connect"
	"connectrpc.com/connect"
)

// Headers that authenticate a registered runner on every RPC but Register.
const (
	HeaderUUID  = "x-runner-uuid"
	HeaderToken = "x-runner-token"
)

// APIPath is where a forge serves the runner protocol, under its root URL.
const APIPath = "/api/actions"

// rpcTimeout bounds each RPC: the forge answers every one at once.
const rpcTimeout = 30 * time.Second

// ErrUnauthorized means the forge does not accept the runner's credentials
// (the runner was deleted, or its token is wrong). Retrying cannot help.
var ErrUnauthorized = errors.New("the forge does not accept this runner's credentials")

// ErrTaskGone means the forge no longer lets this runner report a task
// (it belongs to another runner, or it no longer exists).
var ErrTaskGone = errors.New("the forge no longer accepts reports for this task")

// ErrLogClosed means the forge archived the task's log: no more rows.
var ErrLogClosed = errors.New("the forge has closed the task's log")

// Client calls one forge's runner service as one runner.
type Client struct {
	rpc runnerv1connect.RunnerServiceClient
	// Observe, if set, is told the outcome of every call (for metrics and
	// health).
	Observe func(method string, err error)
}

// NewClient returns a client for the forge at baseURL (its root URL, e.g.
// https://forge.example/). uuid and token may be empty for Register.
func NewClient(baseURL, uuid, token string) *Client {
	auth := connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if uuid != "" {
				req.Header().Set(HeaderUUID, uuid)
				req.Header().Set(HeaderToken, token)
			}
			return next(ctx, req)
		}
	})
	hc := &http.Client{Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}}
	url := strings.TrimRight(baseURL, "/") + APIPath
	return &Client{rpc: runnerv1connect.NewRunnerServiceClient(hc, url, connect.WithInterceptors(auth))}
}

func (c *Client) observe(method string, err error) {
	if c.Observe != nil {
		c.Observe(method, err)
	}
}

// call runs one RPC with a timeout and classifies its error.
func call[Req, Resp any](ctx context.Context, c *Client, method string, fn func(context.Context, *connect.Request[Req]) (*connect.Response[Resp], error), msg *Req) (*Resp, error) {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := fn(ctx, connect.NewRequest(msg))
	err = classify(err)
	c.observe(method, err)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	return resp.Msg, nil
}

// classify maps the forge's errors onto ours. Gitea 1.26 returns gRPC
// status errors that Connect does not know, so they arrive as HTTP 500 with
// code "unknown" and a message like "rpc error: code = Unauthenticated desc
// = unregistered runner"; Forgejo sends proper Connect codes.
func classify(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch code := connect.CodeOf(err); {
	case code == connect.CodeUnauthenticated || strings.Contains(msg, "unregistered runner"):
		return fmt.Errorf("%w: %w", ErrUnauthorized, err)
	case strings.Contains(msg, "invalid runner for task"):
		return fmt.Errorf("%w: %w", ErrTaskGone, err)
	case code == connect.CodeAlreadyExists || strings.Contains(msg, "code = AlreadyExists"):
		return fmt.Errorf("%w: %w", ErrLogClosed, err)
	}
	return err
}

// refused reports whether the forge itself answered a call with an error
// that retrying will not change (as opposed to an outage, a proxy's error
// page or an overloaded server).
func refused(err error) bool {
	if !connect.IsWireError(err) {
		return false
	}
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeResourceExhausted, connect.CodeAborted:
		return false
	}
	return true
}

// Permanent reports whether err cannot be cured by retrying.
func Permanent(err error) bool {
	return errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrTaskGone) || errors.Is(err, ErrLogClosed)
}

// Register registers a new runner with a registration token.
func (c *Client) Register(ctx context.Context, req *runnerv1.RegisterRequest) (*runnerv1.Runner, error) {
	resp, err := call(ctx, c, "Register", c.rpc.Register, req)
	if err != nil {
		return nil, err
	}
	if resp.Runner == nil || resp.Runner.Uuid == "" || resp.Runner.Token == "" {
		return nil, errors.New("Register: the forge returned no runner uuid and token")
	}
	return resp.Runner, nil
}

// Declare replaces the runner's labels and version on the forge.
func (c *Client) Declare(ctx context.Context, version string, labels []string) error {
	_, err := call(ctx, c, "Declare", c.rpc.Declare, &runnerv1.DeclareRequest{Version: version, Labels: labels})
	return err
}

// FetchTask asks for a task; the response always carries the forge's
// current tasks_version.
func (c *Client) FetchTask(ctx context.Context, version int64) (*runnerv1.FetchTaskResponse, error) {
	return call(ctx, c, "FetchTask", c.rpc.FetchTask, &runnerv1.FetchTaskRequest{TasksVersion: version})
}

// UpdateTask reports a task's state; the response says whether the forge
// considers the task done (cancelled, or failed as a zombie).
func (c *Client) UpdateTask(ctx context.Context, req *runnerv1.UpdateTaskRequest) (*runnerv1.UpdateTaskResponse, error) {
	return call(ctx, c, "UpdateTask", c.rpc.UpdateTask, req)
}

// UpdateLog sends log rows starting at row index and returns the number of
// rows the forge has stored (ack_index). With no rows it only asks.
func (c *Client) UpdateLog(ctx context.Context, req *runnerv1.UpdateLogRequest) (int64, error) {
	resp, err := call(ctx, c, "UpdateLog", c.rpc.UpdateLog, req)
	if err != nil {
		return 0, err
	}
	return resp.AckIndex, nil
}
