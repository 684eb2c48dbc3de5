package forge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /metrics from reg and /healthz from health.
func Handler(reg prometheus.Gatherer, health *Health) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("GET /healthz", health)
	return mux
}

// The server's limits. A scrape or a check is one small request: a client
// slower than this is stuck, and must not hold a connection forever.
const (
	readTimeout   = 10 * time.Second
	writeTimeout  = 30 * time.Second
	idleTimeout   = 2 * time.Minute
	shutdownGrace = 5 * time.Second
)

// Server serves a shim's /metrics and /healthz.
type Server struct {
	srv  *http.Server
	addr net.Addr
	done chan error
}

// Listen serves h on addr (host:port; port 0 picks one) until Close.
func Listen(addr string, h http.Handler) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for /metrics and /healthz on %s: %w", addr, err)
	}
	s := &Server{
		srv: &http.Server{
			Handler:     h,
			ReadTimeout: readTimeout, ReadHeaderTimeout: readTimeout,
			WriteTimeout: writeTimeout, IdleTimeout: idleTimeout,
		},
		addr: l.Addr(),
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(l) }()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.addr }

// Close stops the server, letting requests in flight finish for a few
// seconds, and returns why it stopped serving if that was not Close.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	shutdownErr := s.srv.Shutdown(ctx)
	if err := <-s.done; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving /metrics and /healthz: %w", err)
	}
	if shutdownErr != nil {
		return fmt.Errorf("stopping the /metrics and /healthz server: %w", shutdownErr)
	}
	return nil
}
