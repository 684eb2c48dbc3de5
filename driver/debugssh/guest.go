package debugssh

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/solstice-ci/solstice/internal/contract"
)

// Dir is where a session keeps its wrapper shell and login records in the
// guest.
const Dir = contract.GuestRoot + "/debug"

// keyOptions force every debug login through the wrapper (which records it)
// and keep the session a shell: no forwarding of any kind, so the session
// is no tunnel into or out of the guest's network.
const keyOptions = `command="` + Dir + `/shell",no-port-forwarding,no-agent-forwarding,no-X11-forwarding `

// wrapper is the shell every debug login runs. It records the login (seen,
// and a pid file while it lasts), starts in the job's workspace (the one
// directory under runner.workspace) and runs the user's command or a login
// shell. WORKDIR is replaced with the quoted work directory.
const wrapper = `#!/bin/sh
d=` + Dir + `
mkdir -p "$d/live" && : > "$d/seen" && echo $$ > "$d/live/$$"
trap 'rm -f "$d/live/$$"' EXIT HUP INT TERM
cd WORKDIR 2>/dev/null && for w in */; do [ -d "$w" ] && cd "$w" && break; done
echo "Solstice debug session: the job's workspace is $(pwd). Log out to end the session." >&2
if [ -n "$SSH_ORIGINAL_COMMAND" ]; then
	"${SHELL:-/bin/sh}" -c "$SSH_ORIGINAL_COMMAND"
else
	"${SHELL:-/bin/sh}" -l
fi
`

// separator ends the wrapper in installCommand's input; the keys follow.
const separator = "--solstice-debug-keys--"

// installCommand reads the wrapper, the separator line, then the
// authorized_keys lines from stdin: the wrapper goes to Dir/shell, the
// keys are added to the login user's authorized_keys (the driver's own
// key stays: the driver still needs it to watch the session). Earlier
// login records go, so only logins into this session count.
const installCommand = `set -e; umask 077; d=` + Dir + `; mkdir -p "$d" ~/.ssh; rm -rf "$d/live" "$d/seen"; ` +
	`cat > "$d/input"; sed '/^` + separator + `$/,$d' "$d/input" > "$d/shell"; ` +
	`sed '1,/^` + separator + `$/d' "$d/input" >> ~/.ssh/authorized_keys; rm -f "$d/input"; chmod 700 "$d/shell"`

// installInput is what installCommand reads.
func installInput(keys []string, workDir string) string {
	var b bytes.Buffer
	b.WriteString(strings.Replace(wrapper, "WORKDIR", shellQuote(workDir), 1))
	b.WriteString(separator + "\n")
	for _, k := range keys {
		b.WriteString(keyOptions + k + "\n")
	}
	return b.String()
}

// statusCommand prints "seen N" or "none N": whether anyone has logged in
// since the session opened, and how many debug logins are live now.
const statusCommand = `d=` + Dir + `; n=0; for f in "$d"/live/*; do [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && n=$((n+1)); done; ` +
	`if [ -f "$d/seen" ]; then echo "seen $n"; else echo "none $n"; fi`

type loginStatus struct {
	seen bool
	live int
}

// parseStatus reads statusCommand's answer strictly.
func parseStatus(out []byte) (loginStatus, error) {
	f := strings.Fields(string(out))
	if len(f) != 2 || (f[0] != "seen" && f[0] != "none") {
		return loginStatus{}, fmt.Errorf("unexpected login status %.64q", out)
	}
	n, err := strconv.Atoi(f[1])
	if err != nil || n < 0 {
		return loginStatus{}, fmt.Errorf("unexpected login status %.64q", out)
	}
	return loginStatus{seen: f[0] == "seen", live: n}, nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
