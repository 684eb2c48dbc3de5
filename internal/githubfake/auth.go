package githubfake

// Registration and OAuth. Checked against actions/runner:
//   src/Runner.Listener/Configuration/ConfigurationManager.cs (GetTenantCredential,
//     .credentials Data keys clientId/authorizationUrl/requireFipsCryptography),
//   src/Runner.Listener/Configuration/CredentialManager.cs (GitHubAuthResult),
//   src/Runner.Common/RunnerDotcomServer.cs (runner-groups, runners/register,
//     "RemoteAuth" scheme), src/Sdk/DTWebApi/WebApi/Runner.cs, RunnerGroup.cs,
//   src/Runner.Listener/Configuration/IRSAKeyManager.cs (rsaparams keys),
//   src/Sdk/WebApi/WebApi/OAuth/* (VssOAuthJwtBearerAssertion: iss=sub=clientId,
//     aud=authorizationUrl, jti, nbf=now, exp=now+5m; form grant_type=
//     client_credentials, client_assertion_type=urn:...:jwt-bearer),
//   ChristopherHX/github-act-runner runnerconfiguration/compat (JIT .runner keys).

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	defaultScope        = "solstice-ci/fake"
)

// runner is one registered runner. Guarded by Server.mu.
type runner struct {
	id          int64
	name        string
	clientID    string
	scope       string
	labels      []string
	pub         *rsa.PublicKey
	fips        bool
	ephemeral   bool
	accessToken string
	tokenExpiry time.Time
	session     *session
	pending     []brokerMessage // control messages for the next poll
	current     *Job            // job delivered and not yet completed
	jobsTaken   int
}

func (s *Server) restRoutes(mux *http.ServeMux) {
	for _, p := range []string{"", "/api/v3"} {
		mux.HandleFunc("POST "+p+"/repos/{owner}/{repo}/actions/runners/registration-token", s.handleRegToken)
		mux.HandleFunc("POST "+p+"/orgs/{org}/actions/runners/registration-token", s.handleRegToken)
		mux.HandleFunc("POST "+p+"/actions/runner-registration", s.handleRunnerRegistration)
		mux.HandleFunc("GET "+p+"/repos/{owner}/{repo}/actions/runner-groups", s.handleRunnerGroups)
		mux.HandleFunc("GET "+p+"/orgs/{org}/actions/runner-groups", s.handleRunnerGroups)
		mux.HandleFunc("POST "+p+"/actions/runners/register", s.handleRegister)
		mux.HandleFunc("GET "+p+"/repos/{owner}/{repo}/actions/runners", s.handleListRunners)
		mux.HandleFunc("GET "+p+"/orgs/{org}/actions/runners", s.handleListRunners)
		mux.HandleFunc("DELETE "+p+"/repos/{owner}/{repo}/actions/runners/{id}", s.handleDeleteRunner)
		mux.HandleFunc("DELETE "+p+"/orgs/{org}/actions/runners/{id}", s.handleDeleteRunner)
		mux.HandleFunc("POST "+p+"/repos/{owner}/{repo}/actions/runners/generate-jitconfig", s.handleGenerateJIT)
		mux.HandleFunc("POST "+p+"/orgs/{org}/actions/runners/generate-jitconfig", s.handleGenerateJIT)
	}
}

func pathScope(r *http.Request) string {
	if org := r.PathValue("org"); org != "" {
		return org
	}
	return r.PathValue("owner") + "/" + r.PathValue("repo")
}

// RegistrationToken mints a registration token for scope ("owner/repo" or
// "org"), as POST .../actions/runners/registration-token would.
func (s *Server) RegistrationToken(scope string) string {
	tok := "AREG" + strings.ToUpper(randHex(14))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.regTokens[tok] = scope
	return tok
}

func (s *Server) checkPAT(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(h, "token ")
	}
	if !ok || tok == "" {
		return false
	}
	return s.opts.PAT == "" || tok == s.opts.PAT
}

func (s *Server) handleRegToken(w http.ResponseWriter, r *http.Request) {
	if !s.checkPAT(r) {
		s.restError(w, r, http.StatusUnauthorized, "Bad credentials: PAT required")
		return
	}
	tok := s.RegistrationToken(pathScope(r))
	writeJSON(w, http.StatusCreated, map[string]string{
		"token":      tok,
		"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
	})
}

// regScope checks "RemoteAuth <regtoken>" (official runner) or
// "Bearer <regtoken>" (github-act-runner) and returns the token's scope.
func (s *Server) regScope(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "RemoteAuth ")
	if !ok {
		tok, ok = strings.CutPrefix(h, "Bearer ")
	}
	if !ok {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	scope, ok := s.regTokens[tok]
	return scope, ok
}

type runnerRegistrationRequest struct {
	URL         string `json:"url"`
	RunnerEvent string `json:"runner_event"`
}

func (s *Server) handleRunnerRegistration(w http.ResponseWriter, r *http.Request) {
	scope, ok := s.regScope(r)
	if !ok {
		s.restError(w, r, http.StatusUnauthorized, "runner-registration: missing or unknown RemoteAuth registration token")
		return
	}
	var req runnerRegistrationRequest
	if err := decodeStrict(r, &req); err != nil {
		s.restError(w, r, http.StatusBadRequest, "runner-registration: "+err.Error())
		return
	}
	if req.URL != s.GitHubURL(scope) {
		s.restError(w, r, http.StatusNotFound, fmt.Sprintf("runner-registration: url %q does not match token scope %q", req.URL, s.GitHubURL(scope)))
		return
	}
	if req.RunnerEvent != "register" && req.RunnerEvent != "remove" {
		s.restError(w, r, http.StatusBadRequest, fmt.Sprintf("runner-registration: runner_event %q is not register|remove", req.RunnerEvent))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"url":          s.URL() + "/pipelines/",
		"token_schema": "OAuthAccessToken",
		"token":        randHex(20),
		"use_v2_flow":  true,
	})
}

func (s *Server) handleRunnerGroups(w http.ResponseWriter, r *http.Request) {
	scope, ok := s.regScope(r)
	if !ok {
		s.restError(w, r, http.StatusUnauthorized, "runner-groups: missing or unknown RemoteAuth registration token")
		return
	}
	if scope != pathScope(r) {
		s.restError(w, r, http.StatusNotFound, fmt.Sprintf("runner-groups: token is for %q, not %q", scope, pathScope(r)))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"total_count": 1,
		"runner_groups": []map[string]any{
			{"id": 1, "name": "Default", "default": true, "is_hosted": false},
		},
	})
}

type registerLabel struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
}

type registerRequest struct {
	URL             string          `json:"url"`
	GroupID         int64           `json:"group_id"`
	Name            string          `json:"name"`
	Version         string          `json:"version"`
	UpdatesDisabled bool            `json:"updates_disabled"`
	Ephemeral       bool            `json:"ephemeral"`
	Labels          []registerLabel `json:"labels"`
	PublicKey       string          `json:"public_key"`
	RunnerID        *int64          `json:"runner_id"`
	Replace         *bool           `json:"replace"`
}

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	scope, ok := s.regScope(r)
	if !ok {
		s.restError(w, r, http.StatusUnauthorized, "register: missing or unknown RemoteAuth registration token")
		return
	}
	var req registerRequest
	if err := decodeStrict(r, &req); err != nil {
		s.restError(w, r, http.StatusBadRequest, "register: "+err.Error())
		return
	}
	pub, reason := s.validateRegister(&req, scope)
	if reason != "" {
		status := http.StatusBadRequest
		if strings.Contains(reason, "out of date") {
			status = http.StatusNotFound
		}
		s.restError(w, r, status, "register: "+reason)
		return
	}
	labels := make([]string, len(req.Labels))
	for i, l := range req.Labels {
		labels[i] = l.Name
	}
	rn, err := s.addRunner(req.Name, scope, labels, pub, true, req.Ephemeral, req.Replace != nil && *req.Replace)
	if err != nil {
		s.restError(w, r, http.StatusConflict, "register: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id":   rn.id,
		"name": rn.name,
		"authorization": map[string]any{
			"authorization_url": s.AuthorizationURL(),
			"server_url":        s.BrokerURL(),
			"client_id":         rn.clientID,
		},
	})
}

func (s *Server) validateRegister(req *registerRequest, scope string) (*rsa.PublicKey, string) {
	switch {
	case req.URL != s.GitHubURL(scope):
		return nil, fmt.Sprintf("url %q does not match token scope %q", req.URL, s.GitHubURL(scope))
	case req.GroupID != 1:
		return nil, fmt.Sprintf("group_id %d does not exist (only 1, Default)", req.GroupID)
	case req.Name == "":
		return nil, "name is empty"
	case !s.versionOK(req.Version):
		return nil, fmt.Sprintf("runner version %q is out of date (minimum %s)", req.Version, s.opts.MinRunnerVersion)
	case (req.Replace != nil) != (req.RunnerID != nil):
		return nil, "runner_id and replace must be sent together"
	}
	for _, l := range req.Labels {
		if l.Name == "" || (l.Type != "system" && l.Type != "user") {
			return nil, fmt.Sprintf("label %+v: need a name and type system|user", l)
		}
	}
	pub, err := parseXMLPublicKey(req.PublicKey)
	if err != nil {
		return nil, "public_key: " + err.Error()
	}
	return pub, ""
}

// parseXMLPublicKey parses .NET's RSA.ToXmlString(false).
func parseXMLPublicKey(s string) (*rsa.PublicKey, error) {
	var kv struct {
		XMLName  xml.Name `xml:"RSAKeyValue"`
		Modulus  string   `xml:"Modulus"`
		Exponent string   `xml:"Exponent"`
	}
	if err := xml.Unmarshal([]byte(s), &kv); err != nil {
		return nil, fmt.Errorf("want <RSAKeyValue><Modulus>..</Modulus><Exponent>..</Exponent></RSAKeyValue>: %w", err)
	}
	n, err1 := base64.StdEncoding.DecodeString(kv.Modulus)
	e, err2 := base64.StdEncoding.DecodeString(kv.Exponent)
	if err1 != nil || err2 != nil || len(n) < 256 || len(e) == 0 || len(e) > 4 {
		return nil, fmt.Errorf("modulus/exponent must be standard base64 of a >=2048-bit key")
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
}

func (s *Server) addRunner(name, scope string, labels []string, pub *rsa.PublicKey, fips, ephemeral, replace bool) (*runner, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.runnerNames[name]; ok {
		if !replace {
			return nil, fmt.Errorf("a runner named %q already exists", name)
		}
		delete(s.runners, old.clientID)
	}
	s.nextID++
	rn := &runner{
		id: s.nextID, name: name, clientID: newGUID(), scope: scope, labels: labels,
		pub: pub, fips: fips, ephemeral: ephemeral,
	}
	s.runners[rn.clientID] = rn
	s.runnerNames[name] = rn
	return rn, nil
}

// versionOK compares dotted numeric versions against MinRunnerVersion.
func (s *Server) versionOK(v string) bool {
	if s.opts.MinRunnerVersion == "" {
		return true
	}
	have, ok1 := parseVersion(v)
	want, ok2 := parseVersion(s.opts.MinRunnerVersion)
	if !ok1 || !ok2 {
		return false
	}
	for i := range want {
		if have[i] != want[i] {
			return have[i] > want[i]
		}
	}
	return true
}

func parseVersion(v string) ([3]int, bool) {
	var out [3]int
	parts := strings.Split(strings.TrimPrefix(v, "v"), ".")
	if len(parts) != 3 {
		return out, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, false
		}
		out[i] = n
	}
	return out, true
}

// handleToken is the OAuth authorization_url.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.counters.AuthCalls++
	s.mu.Unlock()
	rn, reason := s.verifyAssertionRequest(r)
	if reason != "" {
		s.record(r, http.StatusBadRequest, "auth: "+reason)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_client", "error_description": reason})
		return
	}
	s.mu.Lock()
	rn.accessToken = "ghs_fake_" + randHex(18)
	rn.tokenExpiry = time.Now().Add(s.opts.TokenLifetime)
	s.counters.TokensIssued++
	tok := rn.accessToken
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"token_type":   "bearer",
		"expires_in":   int(s.opts.TokenLifetime / time.Second),
	})
}

func (s *Server) verifyAssertionRequest(r *http.Request) (*runner, string) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return nil, fmt.Sprintf("Content-Type %q, want application/x-www-form-urlencoded", ct)
	}
	if err := r.ParseForm(); err != nil {
		return nil, "bad form: " + err.Error()
	}
	if g := r.PostForm.Get("grant_type"); g != "client_credentials" {
		return nil, fmt.Sprintf("grant_type %q, want client_credentials", g)
	}
	if t := r.PostForm.Get("client_assertion_type"); t != clientAssertionType {
		return nil, fmt.Sprintf("client_assertion_type %q, want %s", t, clientAssertionType)
	}
	return s.verifyAssertion(r.PostForm.Get("client_assertion"))
}

// verifyAssertion checks the client_assertion JWT against the registered
// public key of the runner named by its iss claim.
func (s *Server) verifyAssertion(assertion string) (*runner, string) {
	var unverified jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(assertion, &unverified); err != nil {
		return nil, "client_assertion is not a JWT: " + err.Error()
	}
	s.mu.Lock()
	rn := s.runners[unverified.Issuer]
	s.mu.Unlock()
	if rn == nil {
		return nil, fmt.Sprintf("unknown client id (iss) %q", unverified.Issuer)
	}
	alg := "PS256"
	if !rn.fips {
		alg = "RS256"
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{alg}),
		jwt.WithIssuer(rn.clientID),
		jwt.WithSubject(rn.clientID),
		jwt.WithAudience(s.AuthorizationURL()),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(time.Minute),
	)
	var claims jwt.RegisteredClaims
	_, err := p.ParseWithClaims(assertion, &claims, func(*jwt.Token) (any, error) { return rn.pub, nil })
	if err != nil {
		return nil, fmt.Sprintf("client_assertion rejected (%s required, requireFipsCryptography=%v): %v", alg, rn.fips, err)
	}
	if claims.NotBefore == nil {
		return nil, "client_assertion has no nbf claim"
	}
	if claims.ExpiresAt.Sub(claims.NotBefore.Time) > time.Hour {
		return nil, "client_assertion lifetime exceeds one hour"
	}
	return rn, ""
}

// authRunner checks a runner OAuth bearer token. On failure it has
// already answered 401 and recorded it.
func (s *Server) authRunner(w http.ResponseWriter, r *http.Request) *runner {
	tok, ok := bearer(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	var rn *runner
	for _, c := range s.runners {
		if ok && c.accessToken == tok {
			rn = c
		}
	}
	reason := ""
	switch {
	case s.force401 > 0:
		s.force401--
		reason = "injected 401 (ForceUnauthorized); access token revoked"
		if rn != nil {
			rn.accessToken = ""
		}
	case !ok:
		reason = "missing Bearer access token"
	case rn == nil:
		reason = "access token is not the runner's current OAuth token"
	case time.Now().After(rn.tokenExpiry):
		reason = "access token expired"
	default:
		return rn
	}
	s.recordLocked(r, http.StatusUnauthorized, reason)
	w.Header().Set("WWW-Authenticate", "Bearer")
	http.Error(w, reason, http.StatusUnauthorized)
	return nil
}

// JITConfig registers a runner the way generate-jitconfig does and
// returns its encoded_jit_config: base64(JSON{".runner", ".credentials",
// ".credentials_rsaparams"}), each value base64 of that file's JSON. The
// RSA key is generated by the server. The runner is ephemeral.
func (s *Server) JITConfig(name string, labels []string) string {
	cfg, _ := s.jitConfig(name, defaultScope, labels)
	return cfg
}

func (s *Server) jitConfig(name, scope string, labels []string) (string, *runner) {
	key := testKey()
	rn, err := s.addRunner(name, scope, labels, &key.PublicKey, !s.opts.AllowRS256, true, true)
	if err != nil {
		panic(err) // replace=true never fails
	}
	files := map[string]any{
		".runner":                jitRunnerFile(s, rn),
		".credentials":           jitCredentialsFile(s, rn),
		".credentials_rsaparams": rsaParams(key),
	}
	enc := map[string]string{}
	for name, v := range files {
		b, _ := json.Marshal(v)
		enc[name] = base64.StdEncoding.EncodeToString(b)
	}
	b, _ := json.Marshal(enc)
	return base64.StdEncoding.EncodeToString(b), rn
}

func dotnetBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// jitRunnerFile follows the keys github-act-runner parses from real JIT
// configs (PascalCase, string values).
func jitRunnerFile(s *Server, rn *runner) map[string]string {
	return map[string]string{
		"AgentId":       strconv.FormatInt(rn.id, 10),
		"AgentName":     rn.name,
		"DisableUpdate": "True",
		"Ephemeral":     "True",
		"PoolId":        "1",
		"PoolName":      "Default",
		"ServerUrl":     s.URL() + "/pipelines/",
		"WorkFolder":    "_work",
		"GitHubUrl":     s.GitHubURL(rn.scope),
		"UseV2Flow":     "True",
		"ServerUrlV2":   s.BrokerURL(),
	}
}

func jitCredentialsFile(s *Server, rn *runner) map[string]any {
	return map[string]any{
		"Scheme": "OAuth",
		"Data": map[string]string{
			"clientId":                rn.clientID,
			"authorizationUrl":        s.AuthorizationURL(),
			"requireFipsCryptography": dotnetBool(rn.fips),
		},
	}
}

// rsaParams is RSAParametersSerializable: lowercase-camel keys, base64
// big-endian byte arrays.
func rsaParams(k *rsa.PrivateKey) map[string][]byte {
	k.Precompute()
	return map[string][]byte{
		"d":        k.D.Bytes(),
		"dp":       k.Precomputed.Dp.Bytes(),
		"dq":       k.Precomputed.Dq.Bytes(),
		"exponent": big.NewInt(int64(k.E)).Bytes(),
		"inverseQ": k.Precomputed.Qinv.Bytes(),
		"modulus":  k.N.Bytes(),
		"p":        k.Primes[0].Bytes(),
		"q":        k.Primes[1].Bytes(),
	}
}

type jitRequest struct {
	Name          string   `json:"name"`
	RunnerGroupID int64    `json:"runner_group_id"`
	Labels        []string `json:"labels"`
	WorkFolder    string   `json:"work_folder"`
}

func (s *Server) handleGenerateJIT(w http.ResponseWriter, r *http.Request) {
	if !s.checkPAT(r) {
		s.restError(w, r, http.StatusUnauthorized, "Bad credentials: PAT required")
		return
	}
	var req jitRequest
	if err := decodeStrict(r, &req); err != nil {
		s.restError(w, r, http.StatusUnprocessableEntity, "generate-jitconfig: "+err.Error())
		return
	}
	if req.Name == "" || req.RunnerGroupID != 1 || len(req.Labels) == 0 || len(req.Labels) > 100 {
		s.restError(w, r, http.StatusUnprocessableEntity, "generate-jitconfig: need name, runner_group_id 1 and 1..100 labels")
		return
	}
	cfg, rn := s.jitConfig(req.Name, pathScope(r), req.Labels)
	labels := make([]map[string]any, len(req.Labels))
	for i, l := range req.Labels {
		labels[i] = map[string]any{"id": i + 1, "name": l, "type": "custom"}
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"runner": map[string]any{
			"id": rn.id, "name": rn.name, "os": "unknown", "status": "offline", "busy": false, "labels": labels,
		},
		"encoded_jit_config": cfg,
	})
}

// testKey generates the server-side RSA key for a JIT runner.
func testKey() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}
