package artifact

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// maxTokenLen bounds the runtime token we parse; real ones are < 2 KiB.
const maxTokenLen = 16 << 10

// backendIDs are the run and job ids every ArtifactService call carries.
// They come from the runtime token's scp claim, "Actions.Results:RUN:JOB",
// as the official toolkit reads them; the server checks them against the
// token it verified, so reading the claim unverified is safe.
type backendIDs struct {
	run, job string
}

func idsFromToken(token string) (backendIDs, error) {
	if len(token) > maxTokenLen {
		return backendIDs{}, errors.New("runtime token is too long")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return backendIDs{}, errors.New("runtime token is not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return backendIDs{}, fmt.Errorf("decode runtime token claims: %w", err)
	}
	var claims struct {
		Scp string `json:"scp"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		return backendIDs{}, fmt.Errorf("parse runtime token claims: %w", err)
	}
	for _, scope := range strings.Fields(claims.Scp) {
		if ids, ok := resultsScope(scope); ok {
			return ids, nil
		}
	}
	return backendIDs{}, errors.New("runtime token has no Actions.Results scope")
}

// resultsScope parses "Actions.Results:RUN:JOB".
func resultsScope(scope string) (backendIDs, bool) {
	f := strings.Split(scope, ":")
	if len(f) != 3 || f[0] != "Actions.Results" || !isID(f[1]) || !isID(f[2]) {
		return backendIDs{}, false
	}
	return backendIDs{run: f[1], job: f[2]}, true
}

// isID accepts what both forges use as backend ids: decimal numbers
// (Gitea) and UUIDs (GitHub), nothing that could bend a JSON body or URL.
func isID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	if _, err := strconv.ParseUint(s, 10, 64); err == nil {
		return true
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F' || r == '-') {
			return false
		}
	}
	return true
}
