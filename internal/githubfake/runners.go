package githubfake

// Listing and deleting runners with a registration (or removal) token, as
// config.sh does (actions/runner src/Runner.Common/RunnerDotcomServer.cs:
// GetRunnerByNameAsync is GET {entity}/actions/runners?name=, and
// DeleteRunnerAsync is DELETE {entity}/actions/runners/{id}, both with
// "RemoteAuth <token>"). The reply follows the REST API's "list
// self-hosted runners" schema.

import (
	"fmt"
	"net/http"
	"strconv"
)

// Runners lists the names of the registered runners.
func (s *Server) Runners() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name := range s.runnerNames {
		out = append(out, name)
	}
	return out
}

// scopedRegToken checks the RemoteAuth token against the path's scope.
func (s *Server) scopedRegToken(w http.ResponseWriter, r *http.Request, op string) bool {
	scope, ok := s.regScope(r)
	if !ok {
		s.restError(w, r, http.StatusUnauthorized, op+": missing or unknown RemoteAuth registration token")
		return false
	}
	if scope != pathScope(r) {
		s.restError(w, r, http.StatusNotFound, fmt.Sprintf("%s: token is for %q, not %q", op, scope, pathScope(r)))
		return false
	}
	return true
}

func (s *Server) handleListRunners(w http.ResponseWriter, r *http.Request) {
	if !s.scopedRegToken(w, r, "list runners") {
		return
	}
	name := r.URL.Query().Get("name")
	s.mu.Lock()
	var list []map[string]any
	for n, rn := range s.runnerNames {
		if rn.scope != pathScope(r) || (name != "" && n != name) {
			continue
		}
		labels := []map[string]any{}
		for i, l := range rn.labels {
			labels = append(labels, map[string]any{"id": i + 1, "name": l, "type": "custom"})
		}
		list = append(list, map[string]any{"id": rn.id, "name": rn.name, "os": "illumos", "status": "online", "busy": rn.current != nil, "labels": labels})
	}
	s.mu.Unlock()
	if list == nil {
		list = []map[string]any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(list), "runners": list})
}

func (s *Server) handleDeleteRunner(w http.ResponseWriter, r *http.Request) {
	if !s.scopedRegToken(w, r, "delete runner") {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.restError(w, r, http.StatusBadRequest, "delete runner: the id is not a number")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, rn := range s.runnerNames {
		if rn.id == id && rn.scope == pathScope(r) {
			delete(s.runnerNames, name)
			delete(s.runners, rn.clientID)
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	s.restError(w, r, http.StatusNotFound, fmt.Sprintf("delete runner: no runner %d", id))
}
