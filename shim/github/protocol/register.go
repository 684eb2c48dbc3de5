package protocol

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// ErrLegacyFlow: runner-registration answered use_v2_flow=false; the legacy
// pipelines registration flow is not supported by this package.
var ErrLegacyFlow = errors.New("protocol: GitHub asked for the legacy (non-v2) runner registration flow, which is not supported")

// ErrRunnerExists: a runner with the requested name exists and Replace
// was not set.
var ErrRunnerExists = errors.New("protocol: a runner with this name already exists")

// RegisterOptions configures Register and Remove.
type RegisterOptions struct {
	// URL is the repository, organisation or enterprise URL
	// (https://github.com/OWNER[/REPO], https://HOST/enterprises/E).
	URL string
	// Token is the registration token for Register and the removal token
	// for Remove (as config.sh takes them), sent as "RemoteAuth <token>".
	Token string
	Name  string
	// Labels are the user labels; the default labels are "self-hosted",
	// OS and Arch unless NoDefaultLabels is set.
	Labels          []string
	NoDefaultLabels bool
	// RunnerVersion is the "version" registered; DefaultRunnerVersion if empty.
	RunnerVersion string
	// Replace replaces an existing runner of the same name.
	Replace    bool
	HTTPClient *http.Client
	UserAgent  string

	// Added: the remaining config.sh registration inputs.
	RunnerGroup   string // runner group name; the default group if empty
	Ephemeral     bool
	DisableUpdate bool
	// OS and Arch are the default system labels. The official runner uses
	// "Linux"/"macOS"/"Windows" and "X64"/"ARM64"...; these default to
	// "illumos" and "X64" so that Linux jobs are not routed here.
	OS, Arch string
}

func (o *RegisterOptions) ua() string {
	if o.UserAgent != "" {
		return o.UserAgent
	}
	return DefaultUserAgent(o.version())
}

func (o *RegisterOptions) version() string {
	if o.RunnerVersion != "" {
		return o.RunnerVersion
	}
	return DefaultRunnerVersion
}

// remoteAuth performs a call with "Authorization: RemoteAuth <token>"
// (Runner.Common/RunnerDotcomServer.cs, ConfigurationManager.cs).
func (o *RegisterOptions) remoteAuth(ctx context.Context, c call, out any) error {
	r, err := c.do(ctx, o.HTTPClient, o.ua(), "RemoteAuth "+o.Token)
	if err != nil {
		return err
	}
	if !r.ok() {
		return c.errorFor(r)
	}
	if out == nil || len(strings.TrimSpace(string(r.body))) == 0 {
		return nil
	}
	return decode(c.op, r.body, out)
}

// isHostedServer mirrors UrlUtil.IsHostedServer.
func isHostedServer(host string) bool {
	h := strings.ToLower(host)
	return h == "github.com" || h == "www.github.com" || h == "github.localhost" ||
		strings.HasSuffix(h, ".ghe.localhost") || strings.HasSuffix(h, ".ghe.com")
}

// APIURL returns the REST API base for a GitHub URL: https://api.HOST for
// github.com (and *.ghe.com, as the runner does), https://HOST/api/v3 for
// GHES.
func APIURL(githubURL string) (string, error) {
	u, err := url.Parse(githubURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("protocol: invalid GitHub URL %q", githubURL)
	}
	if isHostedServer(u.Hostname()) {
		host := strings.TrimPrefix(strings.ToLower(u.Host), "www.")
		return u.Scheme + "://api." + host, nil
	}
	return u.Scheme + "://" + u.Host + "/api/v3", nil
}

// entityURL mirrors RunnerDotcomServer.GetEntityUrl: the ".../actions" base
// of a repository, organisation or enterprise.
func entityURL(githubURL string) (string, error) {
	api, err := APIURL(githubURL)
	if err != nil {
		return "", err
	}
	u, _ := url.Parse(githubURL)
	parts := strings.FieldsFunc(u.Path, func(r rune) bool { return r == '/' || r == '\\' })
	switch {
	case len(parts) == 1:
		return api + "/orgs/" + parts[0] + "/actions", nil
	case len(parts) == 2 && strings.EqualFold(parts[0], "enterprises"):
		return api + "/" + parts[0] + "/" + parts[1] + "/actions", nil
	case len(parts) == 2:
		return api + "/repos/" + parts[0] + "/" + parts[1] + "/actions", nil
	}
	return "", fmt.Errorf("protocol: %q should point to a repository, organisation or enterprise", githubURL)
}

// tenantCredential is the runner-registration answer (GitHubAuthResult).
type tenantCredential struct {
	URL         string `json:"url"`
	TokenSchema string `json:"token_schema"`
	Token       string `json:"token"`
	UseV2Flow   bool   `json:"use_v2_flow"`
}

func (o *RegisterOptions) tenantCredential(ctx context.Context, event string) (*tenantCredential, error) {
	api, err := APIURL(o.URL)
	if err != nil {
		return nil, err
	}
	body := map[string]string{"url": o.URL, "runner_event": event}
	c, err := jsonCall("protocol: runner-registration", http.MethodPost, api+"/actions/runner-registration", body)
	if err != nil {
		return nil, err
	}
	var tc tenantCredential
	if err := o.remoteAuth(ctx, c, &tc); err != nil {
		return nil, err
	}
	return &tc, nil
}

type runnerGroup struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	IsDefault bool   `json:"default"`
	IsHosted  bool   `json:"is_hosted"`
}

// runnerGroupID mirrors ConfigurationManager: the default group's name (or
// the requested one) matched among the self-hosted groups.
func (o *RegisterOptions) runnerGroupID(ctx context.Context, entity string) (int64, error) {
	var list struct {
		Groups []runnerGroup `json:"runner_groups"`
	}
	c := call{op: "protocol: list runner groups", method: http.MethodGet, url: entity + "/runner-groups"}
	if err := o.remoteAuth(ctx, c, &list); err != nil {
		return 0, err
	}
	name := o.RunnerGroup
	for _, g := range list.Groups {
		if name == "" && g.IsDefault {
			name = g.Name
		}
	}
	for _, g := range list.Groups {
		if !g.IsHosted && name != "" && strings.EqualFold(g.Name, name) {
			return g.ID, nil
		}
	}
	if name == "" {
		return 0, errors.New("protocol: could not find any self-hosted runner groups")
	}
	return 0, fmt.Errorf("protocol: could not find a self-hosted runner group named %q", name)
}

// existingRunnerID looks the name up (GET {entity}/runners?name=); 0 if none.
func (o *RegisterOptions) existingRunnerID(ctx context.Context, entity string) (int64, error) {
	var list struct {
		Runners []struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		} `json:"runners"`
	}
	u := entity + "/runners?name=" + url.QueryEscape(o.Name)
	c := call{op: "protocol: look up runner by name", method: http.MethodGet, url: u}
	if err := o.remoteAuth(ctx, c, &list); err != nil {
		return 0, err
	}
	if len(list.Runners) == 0 {
		return 0, nil
	}
	return list.Runners[0].ID, nil
}

// agentLabel is AgentLabel as StringUtil.ConvertToJson writes it.
type agentLabel struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"` // "system" or "user"
}

func (o *RegisterOptions) labels() ([]agentLabel, error) {
	var out []agentLabel
	if o.NoDefaultLabels && len(o.Labels) == 0 {
		return nil, errors.New("protocol: disabling default labels without user labels is not supported")
	}
	if !o.NoDefaultLabels {
		osName, arch := o.OS, o.Arch
		if osName == "" {
			osName = "illumos"
		}
		if arch == "" {
			arch = "X64"
		}
		for _, l := range []string{"self-hosted", osName, arch} {
			out = append(out, agentLabel{Name: l, Type: "system"})
		}
	}
	for _, l := range o.Labels {
		out = append(out, agentLabel{Name: l, Type: "user"})
	}
	return out, nil
}

// registeredRunner is DistributedTask.WebApi.Runner.
type registeredRunner struct {
	ID            int64  `json:"id"`
	Name          string `json:"name"`
	Authorization struct {
		AuthorizationURL       string `json:"authorization_url"`
		LegacyAuthorizationURL string `json:"legacy_authorization_url"`
		ServerURL              string `json:"server_url"`
		ClientID               string `json:"client_id"`
	} `json:"authorization"`
}

// Register registers a runner through the runner-admin (v2) flow, as
// config.sh does: POST {api}/actions/runner-registration (event
// "register"), GET {entity}/runner-groups, GET {entity}/runners?name=,
// then POST {api}/actions/runners/register with a fresh RSA-2048 public key
// as <RSAKeyValue> XML. All with "RemoteAuth <registration token>".
func Register(ctx context.Context, o RegisterOptions) (*Credentials, error) {
	if o.URL == "" || o.Token == "" || o.Name == "" {
		return nil, errors.New("protocol: register: URL, Token and Name are required")
	}
	labels, err := o.labels()
	if err != nil {
		return nil, err
	}
	tc, err := o.tenantCredential(ctx, "register")
	if err != nil {
		return nil, err
	}
	if !tc.UseV2Flow {
		return nil, ErrLegacyFlow
	}
	entity, err := entityURL(o.URL)
	if err != nil {
		return nil, err
	}
	groupID, err := o.runnerGroupID(ctx, entity)
	if err != nil {
		return nil, err
	}
	existing, err := o.existingRunnerID(ctx, entity)
	if err != nil {
		return nil, err
	}
	if existing != 0 && !o.Replace {
		return nil, fmt.Errorf("%w: %q", ErrRunnerExists, o.Name)
	}
	return o.register(ctx, groupID, existing, labels)
}

func (o *RegisterOptions) register(ctx context.Context, groupID, existing int64, labels []agentLabel) (*Credentials, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("protocol: register: generating key: %w", err)
	}
	body := map[string]any{
		"url": o.URL, "group_id": groupID, "name": o.Name, "version": o.version(),
		"updates_disabled": o.DisableUpdate, "ephemeral": o.Ephemeral,
		"labels": labels, "public_key": PublicKeyXML(&key.PublicKey),
	}
	if existing != 0 {
		body["runner_id"] = existing
		body["replace"] = true
	}
	api, _ := APIURL(o.URL)
	c, err := jsonCall("protocol: register runner", http.MethodPost, api+"/actions/runners/register", body)
	if err != nil {
		return nil, err
	}
	var rr registeredRunner
	if err := o.remoteAuth(ctx, c, &rr); err != nil {
		return nil, err
	}
	return o.credentials(&rr, key, labels)
}

func (o *RegisterOptions) credentials(rr *registeredRunner, key *rsa.PrivateKey, labels []agentLabel) (*Credentials, error) {
	a := rr.Authorization
	if a.ServerURL == "" || a.ClientID == "" || a.AuthorizationURL == "" {
		return nil, fmt.Errorf("protocol: register: response lacks authorization.server_url/client_id/authorization_url (runner id %d)", rr.ID)
	}
	c := &Credentials{
		RunnerID: rr.ID, RunnerName: rr.Name, GitHubURL: o.URL, ServerURLV2: a.ServerURL,
		ClientID: a.ClientID, AuthorizationURL: a.AuthorizationURL, LegacyAuthorizationURL: a.LegacyAuthorizationURL,
		// The runner stores requireFipsCryptography = agent property
		// RequireFipsCryptography, default true, for this flow.
		RequireFIPS: true, PrivateKeyPEM: encodePrivateKey(key),
		Ephemeral: o.Ephemeral, DisableUpdate: o.DisableUpdate,
	}
	if c.RunnerName == "" {
		c.RunnerName = o.Name
	}
	for _, l := range labels {
		c.Labels = append(c.Labels, l.Name)
	}
	return c, nil
}

// PublicKeyXML renders the key as .NET's RSA.ToXmlString(false) does:
// <RSAKeyValue><Modulus>b64</Modulus><Exponent>b64</Exponent></RSAKeyValue>
// with big-endian unsigned integers.
func PublicKeyXML(k *rsa.PublicKey) string {
	e := big.NewInt(int64(k.E)).Bytes()
	return "<RSAKeyValue><Modulus>" + base64.StdEncoding.EncodeToString(k.N.Bytes()) +
		"</Modulus><Exponent>" + base64.StdEncoding.EncodeToString(e) + "</Exponent></RSAKeyValue>"
}

// Remove deletes the runner as config.sh remove does for the runner-admin
// flow: DELETE {entity}/runners/{id} with "RemoteAuth <removal token>"
// (o.Token). o.URL defaults to c.GitHubURL.
func Remove(ctx context.Context, o RegisterOptions, c *Credentials) error {
	if c == nil || c.RunnerID == 0 {
		return errors.New("protocol: remove: no runner id")
	}
	if o.URL == "" {
		o.URL = c.GitHubURL
	}
	if o.Token == "" {
		return errors.New("protocol: remove: a removal token is required")
	}
	entity, err := entityURL(o.URL)
	if err != nil {
		return err
	}
	u := entity + "/runners/" + strconv.FormatInt(c.RunnerID, 10)
	return o.remoteAuth(ctx, call{op: "protocol: remove runner", method: http.MethodDelete, url: u}, nil)
}
