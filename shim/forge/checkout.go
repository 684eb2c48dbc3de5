package forge

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/solstice-ci/solstice/internal/contract"
)

// Checkout is where the guest clones the workflow's repository from, as a
// job's github context names it: server_url/repository.git at sha and
// ref. Forgejo, Gitea and GitHub all fill these keys the same way; nil
// when the context lacks the server or the repository.
func Checkout(github map[string]any) *contract.Checkout {
	server := strings.TrimRight(Text(github["server_url"]), "/")
	repo := Text(github["repository"])
	if server == "" || repo == "" {
		return nil
	}
	return &contract.Checkout{URL: server + "/" + repo + ".git", SHA: Text(github["sha"]), Ref: Text(github["ref"])}
}

// Text is a github context value as text. The context comes as JSON, so
// a run id is a float64: it is written without an exponent.
func Text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}
