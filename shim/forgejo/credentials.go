package forgejo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/shim/nomadvar"
)

// Credentials are what a registered runner authenticates with.
type Credentials struct {
	ID    int64
	UUID  string
	Token string
	Name  string
	URL   string // the forge's root URL the runner registered with
}

// Store keeps a runner's credentials. Load returns nil, nil when none are
// stored.
type Store interface {
	Load(ctx context.Context) (*Credentials, error)
	Save(ctx context.Context, c *Credentials) error
}

// VariablePrefix is where runner credentials live as Nomad Variables.
const VariablePrefix = "solstice/runners/forgejo/"

// VariablePath is the Nomad Variable of the runner called name on the
// forge at forgeURL: solstice/runners/forgejo/<host>/<name>, with every
// character Nomad does not allow in a path replaced.
func VariablePath(forgeURL, name string) (string, error) {
	u, err := url.Parse(forgeURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("forge URL %q: want http(s)://host[:port]/", forgeURL)
	}
	host := strings.NewReplacer(".", "-", ":", "_").Replace(u.Host)
	if p := strings.Trim(u.Path, "/"); p != "" {
		host += "/" + p // a forge served below a path prefix
	}
	path := VariablePrefix + nomadvar.Sanitize(host) + "/" + nomadvar.Sanitize(name)
	if len(path) > 128 {
		return "", fmt.Errorf("runner credentials path %q is longer than Nomad's 128 characters: use a shorter runner name", path)
	}
	return path, nil
}

// NomadStore keeps credentials in one Nomad Variable.
type NomadStore struct {
	API  *api.Client
	Path string
}

// Load reads the Variable; a missing one is not an error.
func (s *NomadStore) Load(ctx context.Context) (*Credentials, error) {
	v, _, err := s.API.Variables().Peek(s.Path, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("read runner credentials %s: %w", s.Path, err)
	}
	if v == nil {
		return nil, nil
	}
	c := &Credentials{UUID: v.Items["uuid"], Token: v.Items["token"], Name: v.Items["name"], URL: v.Items["url"]}
	c.ID, _ = strconv.ParseInt(v.Items["id"], 10, 64)
	if c.UUID == "" || c.Token == "" {
		return nil, fmt.Errorf("runner credentials %s lack uuid or token", s.Path)
	}
	return c, nil
}

// Save writes the Variable, replacing what was there.
func (s *NomadStore) Save(ctx context.Context, c *Credentials) error {
	if c == nil || c.UUID == "" || c.Token == "" {
		return errors.New("save runner credentials: no uuid or token")
	}
	v := &api.Variable{Path: s.Path, Items: api.VariableItems{
		"id": strconv.FormatInt(c.ID, 10), "uuid": c.UUID, "token": c.Token, "name": c.Name, "url": c.URL,
	}}
	if _, _, err := s.API.Variables().Update(v, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("store runner credentials %s: %w", s.Path, err)
	}
	return nil
}
