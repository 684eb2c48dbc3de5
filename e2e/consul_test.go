//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// ConsulVersion is the agent the service-discovery tests run (make consul):
// the newest MPL-2.0 release.
const ConsulVersion = "1.15.6"

// Consul is a dev-mode Consul agent (server and client, in memory) owned
// by one test, on 127.0.0.1 with ports of its own so tests can run side by
// side.
type Consul struct {
	Addr string // host:port of the HTTP API, for Nomad's consul block

	t       testing.TB
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

// consulPorts are the agent's listeners; DNS and gRPC stay off, as nothing
// here uses them.
type consulPorts struct {
	HTTP    int `json:"http"`
	DNS     int `json:"dns"`
	SerfLAN int `json:"serf_lan"`
	SerfWAN int `json:"serf_wan"`
	Server  int `json:"server"`
	GRPC    int `json:"grpc"`
	GRPCTLS int `json:"grpc_tls"`
}

// StartConsul starts an agent for t, waits for it to elect itself leader,
// and stops it, by PID, when t ends. Its log is printed when t failed.
func StartConsul(t testing.TB) *Consul {
	t.Helper()
	dir := t.TempDir()
	ports := freeConsulPorts(t)
	conf := filepath.Join(dir, "consul.json")
	writeJSON(t, conf, map[string]any{
		"node_name": "solstice-e2e", "disable_update_check": true, "ports": ports,
	})
	c := &Consul{Addr: fmt.Sprintf("127.0.0.1:%d", ports.HTTP), t: t, exited: make(chan struct{}), logPath: filepath.Join(dir, "consul.log")}
	c.start(conf)
	t.Cleanup(c.cleanup)
	if err := c.waitLeader(time.Minute); err != nil {
		t.Fatalf("consul: %v\n%s", err, c.logTail())
	}
	t.Logf("consul %s pid %d at %s", ConsulVersion, c.cmd.Process.Pid, c.Addr)
	return c
}

// freeConsulPorts asks the kernel for five free ports; DNS and gRPC are -1.
func freeConsulPorts(t testing.TB) consulPorts {
	var p [5]int
	for i := range p {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find free ports for consul: %v", err)
		}
		defer l.Close() // held until all are picked, so none repeats
		p[i] = l.Addr().(*net.TCPAddr).Port
	}
	return consulPorts{HTTP: p[0], SerfLAN: p[1], SerfWAN: p[2], Server: p[3], DNS: -1, GRPC: -1, GRPCTLS: -1}
}

func writeJSON(t testing.TB, path string, v any) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err == nil {
		err = os.WriteFile(path, data, 0o644)
	}
	if err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// start runs the agent in its own process group, logging to logPath.
func (c *Consul) start(conf string) {
	logf, err := os.Create(c.logPath)
	if err != nil {
		c.t.Fatalf("create consul log: %v", err)
	}
	defer logf.Close()
	c.cmd = exec.Command(env(c.t, "SOLSTICE_CONSUL"), "agent", "-dev",
		"-bind", "127.0.0.1", "-client", "127.0.0.1", "-config-file", conf)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		c.t.Fatalf("start consul: %v", err)
	}
	go func() {
		c.cmd.Wait()
		close(c.exited)
	}()
}

// waitLeader polls /v1/status/leader until it names a server.
func (c *Consul) waitLeader(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		var leader string
		if err := c.Get("status/leader", &leader); err == nil && leader != "" {
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("the agent exited while waiting for a leader")
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("no leader within %s", limit)
}

// cleanup interrupts the agent (it leaves gracefully), then kills its
// process group after ten seconds.
func (c *Consul) cleanup() {
	if c.t.Failed() {
		c.t.Logf("consul agent log:\n%s", c.logTail())
	}
	pid := c.cmd.Process.Pid
	syscall.Kill(pid, syscall.SIGINT)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-c.exited
	}
}

func (c *Consul) logTail() string {
	data, _ := os.ReadFile(c.logPath)
	return tail(string(data), 80)
}

// Get reads /v1/<path> and decodes its JSON into out.
func (c *Consul) Get(path string, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+c.Addr+"/v1/"+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("consul GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("consul GET %s: %s: %s", path, resp.Status, data)
	}
	return json.Unmarshal(data, out)
}

// ConsulService is an instance of a service in Consul's catalog.
type ConsulService struct {
	ServiceID      string
	ServiceAddress string
	ServicePort    int
	ServiceTags    []string
}

// ConsulCheck is a health check as /v1/health/checks reports it.
type ConsulCheck struct {
	CheckID     string
	Name        string
	Status      string // passing, warning or critical
	Output      string
	ServiceName string
}

// Service lists the catalog's instances of a service.
func (c *Consul) Service(name string) ([]ConsulService, error) {
	var out []ConsulService
	return out, c.Get("catalog/service/"+url.PathEscape(name), &out)
}

// Checks lists the health checks of a service's instances.
func (c *Consul) Checks(name string) ([]ConsulCheck, error) {
	var out []ConsulCheck
	return out, c.Get("health/checks/"+url.PathEscape(name), &out)
}
