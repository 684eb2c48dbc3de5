package protocol

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// jitRunner is the .runner file (RunnerSettings). encoding/json matches
// names case-insensitively, so both the PascalCase and camelCase spellings
// that occur in the wild are accepted.
type jitRunner struct {
	AgentID       flexInt  `json:"AgentId"`
	AgentName     string   `json:"AgentName"`
	PoolID        flexInt  `json:"PoolId"`
	ServerURL     string   `json:"ServerUrl"`
	ServerURLV2   string   `json:"ServerUrlV2"`
	UseV2Flow     flexBool `json:"UseV2Flow"`
	GitHubURL     string   `json:"GitHubUrl"`
	Ephemeral     flexBool `json:"Ephemeral"`
	DisableUpdate flexBool `json:"DisableUpdate"`
}

// flexInt is a number GitHub's JIT configs write either as a JSON number
// or as a string ("AgentId": "5").
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("want an integer, got %s", b)
	}
	*f = flexInt(n)
	return nil
}

// flexBool is a boolean written as JSON or as .NET's "True"/"False".
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = false
		return nil
	}
	v, err := strconv.ParseBool(strings.ToLower(s))
	if err != nil {
		return fmt.Errorf("want a boolean, got %s", b)
	}
	*f = flexBool(v)
	return nil
}

// jitCredentials is the .credentials file (CredentialData).
type jitCredentials struct {
	Scheme string            `json:"Scheme"`
	Data   map[string]string `json:"Data"`
}

// jitRSAParams is .credentials_rsaparams (RSAParametersSerializable):
// base64 big-endian unsigned integers.
type jitRSAParams struct {
	D, DP, DQ, Exponent, InverseQ, Modulus, P, Q []byte
}

// ParseJITConfig decodes an encoded_jit_config: base64(JSON{file name:
// base64(file bytes)}) holding .runner, .credentials and
// .credentials_rsaparams (Runner.Listener/Runner.cs).
func ParseJITConfig(blob string) (*Credentials, error) {
	files, err := jitFiles(blob)
	if err != nil {
		return nil, err
	}
	var r jitRunner
	var cr jitCredentials
	var kp jitRSAParams
	for name, v := range map[string]any{".runner": &r, ".credentials": &cr, ".credentials_rsaparams": &kp} {
		data, ok := files[name]
		if !ok {
			return nil, fmt.Errorf("protocol: jit config: missing %s", name)
		}
		if err := json.Unmarshal(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), v); err != nil {
			return nil, fmt.Errorf("protocol: jit config: %s: %w", name, err)
		}
	}
	return jitToCredentials(&r, &cr, &kp)
}

func jitFiles(blob string) (map[string][]byte, error) {
	outer, err := decodeB64(strings.TrimSpace(blob))
	if err != nil {
		return nil, fmt.Errorf("protocol: jit config: %w", err)
	}
	var enc map[string]string
	if err := json.Unmarshal(bytes.TrimPrefix(outer, []byte("\xef\xbb\xbf")), &enc); err != nil {
		return nil, fmt.Errorf("protocol: jit config: %w", err)
	}
	files := make(map[string][]byte, len(enc))
	for name, v := range enc {
		b, err := decodeB64(v)
		if err != nil {
			return nil, fmt.Errorf("protocol: jit config: %s: %w", name, err)
		}
		files[name] = b
	}
	return files, nil
}

func decodeB64(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

// lookupFold finds a map key case-insensitively.
func lookupFold(m map[string]string, key string) (string, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

func jitToCredentials(r *jitRunner, cr *jitCredentials, kp *jitRSAParams) (*Credentials, error) {
	if !r.UseV2Flow || r.ServerURLV2 == "" {
		return nil, errors.New("protocol: jit config is for the legacy (non-v2) flow, which is not supported")
	}
	if !strings.EqualFold(cr.Scheme, "OAuth") {
		return nil, fmt.Errorf("protocol: jit config: unsupported credential scheme %q", cr.Scheme)
	}
	clientID, _ := lookupFold(cr.Data, "clientId")
	authURL, _ := lookupFold(cr.Data, "authorizationUrl")
	if clientID == "" || authURL == "" {
		return nil, errors.New("protocol: jit config: .credentials lacks clientId/authorizationUrl")
	}
	fips, _ := lookupFold(cr.Data, "requireFipsCryptography")
	key, err := kp.privateKey()
	if err != nil {
		return nil, err
	}
	return &Credentials{
		RunnerID: int64(r.AgentID), RunnerName: r.AgentName, GitHubURL: r.GitHubURL, ServerURLV2: r.ServerURLV2,
		ClientID: clientID, AuthorizationURL: authURL,
		// OAuthCredential: ConvertToBoolean(value, false).
		RequireFIPS:   strings.EqualFold(strings.TrimSpace(fips), "true"),
		PrivateKeyPEM: encodePrivateKey(key), Ephemeral: bool(r.Ephemeral), DisableUpdate: bool(r.DisableUpdate),
	}, nil
}

func (p *jitRSAParams) privateKey() (*rsa.PrivateKey, error) {
	if len(p.Modulus) == 0 || len(p.Exponent) == 0 || len(p.D) == 0 || len(p.P) == 0 || len(p.Q) == 0 {
		return nil, errors.New("protocol: jit config: incomplete RSA parameters")
	}
	n := func(b []byte) *big.Int { return new(big.Int).SetBytes(b) }
	e := n(p.Exponent)
	if !e.IsInt64() || e.Int64() > 1<<31-1 {
		return nil, errors.New("protocol: jit config: RSA exponent too large")
	}
	k := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: n(p.Modulus), E: int(e.Int64())},
		D:         n(p.D),
		Primes:    []*big.Int{n(p.P), n(p.Q)},
	}
	if err := k.Validate(); err != nil {
		return nil, fmt.Errorf("protocol: jit config: RSA key: %w", err)
	}
	k.Precompute()
	return k, nil
}
