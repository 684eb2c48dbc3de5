package protocol

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
)

// Credentials is everything a registered runner needs. The shim stores it
// (as JSON) in a Nomad Variable.
type Credentials struct {
	RunnerID   int64  `json:"runner_id"`
	RunnerName string `json:"runner_name"`
	GitHubURL  string `json:"github_url"`
	// ServerURLV2 is the broker base URL (RunnerSettings.ServerUrlV2).
	ServerURLV2 string `json:"server_url_v2"`
	// ClientID and AuthorizationURL come from the registration's
	// authorization object (.credentials Data clientId/authorizationUrl).
	ClientID         string `json:"client_id"`
	AuthorizationURL string `json:"authorization_url"`
	// LegacyAuthorizationURL is informational: register may return one for
	// the runner's auth migration; this package always uses
	// AuthorizationURL.
	LegacyAuthorizationURL string `json:"legacy_authorization_url,omitempty"`
	// RequireFIPS selects PS256 instead of RS256 for the JWT assertion.
	RequireFIPS bool `json:"require_fips"`
	// PrivateKeyPEM is the runner's RSA key, PKCS#1 PEM.
	PrivateKeyPEM string   `json:"private_key"`
	Labels        []string `json:"labels,omitempty"`
	// Ephemeral and DisableUpdate mirror the registration flags.
	Ephemeral     bool `json:"ephemeral,omitempty"`
	DisableUpdate bool `json:"disable_update,omitempty"`
}

// PrivateKey parses PrivateKeyPEM (PKCS#1; PKCS#8 is accepted too).
func (c *Credentials) PrivateKey() (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(c.PrivateKeyPEM))
	if block == nil {
		return nil, errors.New("protocol: credentials: no PEM private key")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("protocol: credentials: private key is neither PKCS#1 nor PKCS#8 RSA")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("protocol: credentials: private key is not RSA")
	}
	return rk, nil
}

func encodePrivateKey(k *rsa.PrivateKey) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
}
