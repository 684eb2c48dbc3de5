package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// QMP is a client for QEMU's machine protocol over a unix socket. It is
// deliberately small: Solstice needs capabilities negotiation, a handful of
// commands (system_powerdown, quit, query-status) and the SHUTDOWN event.
type QMP struct {
	conn   net.Conn
	cmdMu  sync.Mutex // one command in flight at a time
	nextID uint64
	replyC chan qmpMessage
	events chan Event
	done   chan struct{}
	err    error
}

// Event is an asynchronous QMP event such as SHUTDOWN or POWERDOWN.
type Event struct {
	Name string          `json:"event"`
	Data json.RawMessage `json:"data"`
}

type qmpMessage struct {
	ID     uint64          `json:"id"`
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// DialQMP connects to the socket, reads the greeting and enters command mode.
// It retries until ctx ends, because QEMU creates the socket a little after
// the process starts.
func DialQMP(ctx context.Context, socket string) (*QMP, error) {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", socket)
		if err == nil {
			q, err := handshake(ctx, conn)
			if err != nil {
				conn.Close()
				return nil, fmt.Errorf("qmp handshake on %s: %w", socket, err)
			}
			return q, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to qmp socket %s: %w", socket, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func handshake(ctx context.Context, conn net.Conn) (*QMP, error) {
	q := &QMP{
		conn:   conn,
		replyC: make(chan qmpMessage, 8),
		events: make(chan Event, 16),
		done:   make(chan struct{}),
	}
	greeting := make(chan error, 1)
	go q.read(greeting)
	select {
	case err := <-greeting:
		if err != nil {
			return nil, err
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if _, err := q.Execute(ctx, "qmp_capabilities", nil); err != nil {
		return nil, err
	}
	return q, nil
}

// read demultiplexes the socket: the greeting first, then command replies to
// Execute and events to Events.
func (q *QMP) read(greeting chan<- error) {
	defer close(q.done)
	defer close(q.events)
	sc := bufio.NewScanner(q.conn)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	first := true
	for sc.Scan() {
		var m qmpMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			q.err = fmt.Errorf("decode qmp message %q: %w", sc.Text(), err)
			break
		}
		switch {
		case first:
			first = false
			if m.QMP == nil {
				greeting <- fmt.Errorf("unexpected greeting %q", sc.Text())
				return
			}
			greeting <- nil
		case m.Event != "":
			select {
			case q.events <- Event{Name: m.Event, Data: m.Data}:
			default: // nobody listens; events are a convenience, not a log
			}
		default:
			select {
			case q.replyC <- m:
			default: // a reply to a command whose caller gave up
			}
		}
	}
	if first {
		greeting <- errors.New("socket closed before the greeting")
	}
	if q.err == nil {
		q.err = sc.Err()
	}
}

// Events delivers asynchronous events; it is closed when the socket closes.
func (q *QMP) Events() <-chan Event { return q.events }

// Done is closed when the connection ends, which happens when QEMU exits.
func (q *QMP) Done() <-chan struct{} { return q.done }

// Execute runs one command and returns its "return" value.
func (q *QMP) Execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	return q.execute(ctx, command, args, nil)
}

// execute runs one command; oob, when set, is ancillary data (SCM_RIGHTS)
// sent with it, which is how QEMU's getfd receives a descriptor.
func (q *QMP) execute(ctx context.Context, command string, args any, oob []byte) (json.RawMessage, error) {
	q.cmdMu.Lock()
	defer q.cmdMu.Unlock()
	q.nextID++
	id := q.nextID
	req := map[string]any{"execute": command, "id": id}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		q.conn.SetWriteDeadline(dl)
	}
	if err := q.write(append(b, '\n'), oob); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", command, err)
	}
	for {
		select {
		case m := <-q.replyC:
			if m.ID != id {
				continue // late reply to an earlier, abandoned command
			}
			if m.Error != nil {
				return nil, fmt.Errorf("qmp %s: %s: %s", command, m.Error.Class, m.Error.Desc)
			}
			return m.Return, nil
		case <-q.done:
			return nil, fmt.Errorf("qmp %s: connection closed: %v", command, q.err)
		case <-ctx.Done():
			return nil, fmt.Errorf("qmp %s: %w", command, ctx.Err())
		}
	}
}

// Status returns the VM run state, e.g. "running" or "paused".
func (q *QMP) Status(ctx context.Context) (string, error) {
	raw, err := q.Execute(ctx, "query-status", nil)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", fmt.Errorf("decode query-status: %w", err)
	}
	return st.Status, nil
}

// Powerdown presses the virtual ACPI power button.
func (q *QMP) Powerdown(ctx context.Context) error {
	_, err := q.Execute(ctx, "system_powerdown", nil)
	return err
}

// Close drops the connection; QEMU keeps running.
func (q *QMP) Close() error { return q.conn.Close() }

// AddHostForward forwards TCP host:port (on the host, or in the VM's
// network namespace) to the guest's sshd on the user-mode network, while
// the VM runs: a debug session's port exists only as long as the session.
func (q *QMP) AddHostForward(ctx context.Context, host string, port int) error {
	return q.monitor(ctx, fmt.Sprintf("hostfwd_add %s tcp:%s:%d-:22", netdevID, host, port))
}

// RemoveHostForward undoes AddHostForward.
func (q *QMP) RemoveHostForward(ctx context.Context, host string, port int) error {
	return q.monitor(ctx, fmt.Sprintf("hostfwd_remove %s tcp:%s:%d", netdevID, host, port))
}

// monitor runs a human monitor command, which reports failure as text in
// its return value rather than as a QMP error.
func (q *QMP) monitor(ctx context.Context, line string) error {
	raw, err := q.Execute(ctx, "human-monitor-command", map[string]string{"command-line": line})
	if err != nil {
		return err
	}
	var out string
	if err := json.Unmarshal(raw, &out); err != nil {
		return fmt.Errorf("qmp %s: decode the answer: %w", line, err)
	}
	if out = strings.TrimSpace(out); out != "" {
		return fmt.Errorf("qmp %s: %.200s", line, out)
	}
	return nil
}
