package nomadagent

import (
	"context"
	"fmt"

	"github.com/hashicorp/nomad/api"
)

// Bootstrap makes the agent's first management token, as `nomad acl
// bootstrap` does, and keeps it for Client. The agent must run with ACL
// set. The server may not take the request at once after its election,
// so it is retried until ctx ends.
func (a *Agent) Bootstrap(ctx context.Context) (string, error) {
	c, err := api.NewClient(&api.Config{Address: a.Addr})
	if err != nil {
		return "", err
	}
	var lastErr error
	err = a.poll(ctx, "the ACL bootstrap", func() (bool, error) {
		tok, _, err := c.ACLTokens().Bootstrap((&api.WriteOptions{}).WithContext(ctx))
		if err != nil {
			lastErr = err
			return false, nil
		}
		a.Token = tok.SecretID
		return true, nil
	})
	if err != nil {
		return "", fmt.Errorf("bootstrap nomad ACLs: %w (last error: %v)", err, lastErr)
	}
	return a.Token, nil
}
