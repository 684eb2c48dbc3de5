package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/shim/cache"
	"github.com/solstice-ci/solstice/shim/forgejo"
)

// cacheFlags configure the actions/cache service of the forgejo shim.
type cacheFlags struct {
	dir, listen, url string
	sizeMiB          int64
	ttl              time.Duration
}

func (c *cacheFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&c.dir, "cache-dir", "", "directory (or Nomad host volume) for actions/cache entries; empty: no cache service")
	fs.StringVar(&c.listen, "cache-listen", ":8088", "address the cache service listens on")
	fs.StringVar(&c.url, "cache-url", "", "the cache service's URL as guests reach it (allow-list its address in egress_allow)")
	fs.Int64Var(&c.sizeMiB, "cache-size-mib", 10240, "total size of the cache entries; least recently used ones are evicted beyond it")
	fs.DurationVar(&c.ttl, "cache-token-ttl", 24*time.Hour, "how long a job's cache token is valid (at least the longest job)")
}

// serve starts the cache service when -cache-dir is set. The token key is
// $SOLSTICE_CACHE_KEY (hex, 32 bytes or more), shared by every shim that
// serves the same directory; without it a random key is made, and tokens
// of running jobs stop working when the shim restarts.
//
// With -cache-url and no -cache-dir the service runs elsewhere (solstice
// cache serve) and the shim only mints tokens with the shared key.
func (c *cacheFlags) serve(log hclog.Logger) (*forgejo.CacheAccess, func(), error) {
	if c.dir == "" && c.url == "" {
		return nil, func() {}, nil
	}
	if c.url == "" {
		return nil, nil, errors.New("-cache-dir needs -cache-url, the address guests reach the cache service at")
	}
	if c.dir == "" && os.Getenv("SOLSTICE_CACHE_KEY") == "" {
		return nil, nil, errors.New("a cache service run elsewhere (-cache-url without -cache-dir) needs its key in SOLSTICE_CACHE_KEY")
	}
	key, err := cacheKey(log)
	if err != nil {
		return nil, nil, err
	}
	minter, err := cache.NewMinter(key)
	if err != nil {
		return nil, nil, err
	}
	access := &forgejo.CacheAccess{URL: c.url, Minter: minter, TTL: c.ttl}
	if c.dir == "" {
		return access, func() {}, nil
	}
	store, err := cache.NewStore(c.dir, c.sizeMiB<<20)
	if err != nil {
		return nil, nil, err
	}
	l, err := net.Listen("tcp", c.listen)
	if err != nil {
		return nil, nil, fmt.Errorf("listen for the cache service on %s: %w", c.listen, err)
	}
	// Blocks are up to 64 MiB and archives gigabytes: long body timeouts,
	// a short one for headers.
	srv := &http.Server{Handler: cache.NewServer(store, minter, c.url, log),
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Minute, WriteTimeout: time.Hour, IdleTimeout: 2 * time.Minute}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("cache service stopped", "error", err)
		}
	}()
	log.Info("serving actions/cache", "addr", l.Addr().String(), "url", c.url, "dir", c.dir, "size_mib", c.sizeMiB)
	stop := func() {
		if err := srv.Close(); err != nil {
			log.Error("cache service", "error", err)
		}
	}
	return access, stop, nil
}

const cacheUsage = `usage:
  solstice cache serve --cache-dir DIR --cache-url URL [--cache-listen ADDR] [--cache-size-mib N]

Serves actions/cache for Forgejo/Gitea jobs on its own (e.g. as a Nomad
service job); shims then run with the same --cache-url and
SOLSTICE_CACHE_KEY and only mint tokens.`

func cmdCache(ctx context.Context, args []string) int {
	return group("cache", cacheUsage, map[string]func([]string) int{
		"serve": func(a []string) int { return cacheServe(ctx, a) },
	}, args)
}

func cacheServe(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("cache serve", flag.ContinueOnError)
	var cf cacheFlags
	cf.add(fs)
	if code, ok := parseFlags(fs, cacheUsage, args); !ok {
		return code
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "solstice-cache", Level: hclog.LevelFromString(envOr("SOLSTICE_LOG_LEVEL", "info"))})
	if cf.dir == "" {
		log.Error("cache serve needs --cache-dir")
		return 2
	}
	_, stop, err := cf.serve(log)
	if err != nil {
		log.Error("cache service", "error", err)
		return 1
	}
	defer stop()
	<-ctx.Done()
	return 0
}

func cacheKey(log hclog.Logger) ([]byte, error) {
	if v := os.Getenv("SOLSTICE_CACHE_KEY"); v != "" {
		key, err := hex.DecodeString(v)
		if err != nil || len(key) < 32 {
			return nil, errors.New("SOLSTICE_CACHE_KEY must be at least 32 bytes in hex")
		}
		return key, nil
	}
	log.Warn("SOLSTICE_CACHE_KEY is not set: using a random key; cache tokens of running jobs end with this process")
	key := make([]byte, 32)
	_, err := rand.Read(key)
	return key, err
}
