package cache

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// maxToken bounds a token we parse.
const maxToken = 4096

// Minter makes and checks cache tokens: the repository they are good for
// and an expiry, HMAC-SHA256-signed with the shim's key.
type Minter struct {
	key []byte
	now func() time.Time
}

// NewMinter makes a minter; the key must be at least 32 random bytes and
// shared by every shim instance that serves the same store.
func NewMinter(key []byte) (*Minter, error) {
	if len(key) < 32 {
		return nil, errors.New("cache token key must be at least 32 bytes")
	}
	return &Minter{key: key, now: time.Now}, nil
}

type claims struct {
	Repo string `json:"r"`
	Exp  int64  `json:"e"`
}

// Mint makes a token for repository repo, valid for ttl.
func (m *Minter) Mint(repo string, ttl time.Duration) (string, error) {
	repo = normRepo(repo)
	if repo == "" {
		return "", errors.New("cache token needs a repository")
	}
	body, err := json.Marshal(claims{Repo: repo, Exp: m.now().Add(ttl).Unix()})
	if err != nil {
		return "", fmt.Errorf("encode cache token: %w", err)
	}
	payload := base64.RawURLEncoding.EncodeToString(body)
	return "sct1." + payload + "." + m.sign(payload), nil
}

func (m *Minter) sign(payload string) string {
	mac := hmac.New(sha256.New, m.key)
	mac.Write([]byte("cache-token\x00" + payload))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// Verify returns the repository a valid, unexpired token is good for.
func (m *Minter) Verify(token string) (string, error) {
	if len(token) > maxToken {
		return "", errors.New("token too long")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[0] != "sct1" {
		return "", errors.New("not a cache token")
	}
	if !hmac.Equal([]byte(parts[2]), []byte(m.sign(parts[1]))) {
		return "", errors.New("bad token signature")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("decode token: %w", err)
	}
	var c claims
	if err := json.Unmarshal(raw, &c); err != nil {
		return "", fmt.Errorf("parse token: %w", err)
	}
	if m.now().Unix() > c.Exp {
		return "", errors.New("token expired")
	}
	if c.Repo == "" {
		return "", errors.New("token names no repository")
	}
	return c.Repo, nil
}

// normRepo is a repository's name as the store keys it: forges compare
// owner/name case-insensitively.
func normRepo(repo string) string { return strings.ToLower(strings.TrimSpace(repo)) }
