package githubfake

import (
	"net/http"
	"regexp"
	"strings"
)

// userKeysPath is github.com's public key listing of a user, /{login}.keys:
// a login is alphanumeric with single inner hyphens, at most 39 characters.
var userKeysPath = regexp.MustCompile(`^/([A-Za-z0-9](?:[A-Za-z0-9]|-[A-Za-z0-9]){0,38})\.keys$`)

// SetUserKeys makes GET /{user}.keys list the user's public keys as
// github.com does: text/plain, one "TYPE BASE64" line each, no comments.
// A user without keys lists nothing; an unknown user answers 404.
func (s *Server) SetUserKeys(user string, keys ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.userKeys == nil {
		s.userKeys = map[string][]string{}
	}
	var clean []string
	for _, k := range keys {
		f := strings.Fields(k)
		if len(f) >= 2 {
			clean = append(clean, f[0]+" "+f[1]) // GitHub drops the comment
		}
	}
	s.userKeys[strings.ToLower(user)] = clean
}

// handleUserKeys serves /{user}.keys; it reports false for any other path.
func (s *Server) handleUserKeys(w http.ResponseWriter, r *http.Request) bool {
	m := userKeysPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		return false
	}
	if r.Method != http.MethodGet {
		s.record(r, http.StatusMethodNotAllowed, "user keys: only GET")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return true
	}
	s.mu.Lock()
	keys, ok := s.userKeys[strings.ToLower(m[1])] // logins are case-insensitive
	s.mu.Unlock()
	if !ok {
		s.record(r, http.StatusNotFound, "user keys: no such user "+m[1])
		http.Error(w, "Not Found", http.StatusNotFound)
		return true
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, k := range keys {
		w.Write([]byte(k + "\n"))
	}
	return true
}
