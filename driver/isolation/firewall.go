package isolation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
)

// Tables runs iptables and ip6tables, on the host or inside a network
// namespace.
type Tables struct {
	IPTables  string // "iptables"
	IP6Tables string // "ip6tables"
	// IPv6 says whether to manage IPv6 too (see IPv6Enabled).
	IPv6 bool
	// Netns, when set, is the network namespace to run in (through
	// nsenter); empty for the host's.
	Netns string
}

func (t Tables) families() []Family {
	if t.IPv6 {
		return []Family{IPv4, IPv6}
	}
	return []Family{IPv4}
}

func (t Tables) binary(f Family) string {
	if f == IPv6 {
		return orDefault(t.IP6Tables, "ip6tables")
	}
	return orDefault(t.IPTables, "iptables")
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// run runs the family's iptables (or, with restore, its iptables-restore
// reading stdin) and returns its standard output. -w waits for the
// xtables lock instead of failing when another tool holds it.
func (t Tables) run(ctx context.Context, f Family, stdin []byte, args ...string) (string, error) {
	bin := t.binary(f)
	if stdin != nil {
		bin += "-restore"
	}
	argv := append([]string{bin, "-w", "5"}, args...)
	if t.Netns != "" {
		argv = append([]string{"nsenter", "--net=" + t.Netns, "--"}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Enforcer keeps a policy installed in one network namespace and notices
// when someone (a firewall reload, an operator) changes it.
type Enforcer struct {
	Tables Tables

	mu   sync.Mutex
	last map[Family]*snapshot
}

// snapshot is what the enforcer installed for a family, as iptables
// printed it back: comparing with iptables' own spelling needs no
// knowledge of how it normalises rules.
type snapshot struct {
	gid   int
	spec  [][]string // the rules generated, to notice a changed policy
	chain []string   // "-A CHAIN …" lines
	jump  string     // the "-A OUTPUT … -j CHAIN" line
}

// Drift is a difference between the rules in the kernel and those the
// enforcer installed.
type Drift struct {
	Missing bool // the chain or the jump to it is gone (else: altered)
	Problem string
}

func (d *Drift) Error() string { return d.Problem }

// Install puts the policy in place for every family, replacing what the
// enforcer installed before.
func (e *Enforcer) Install(ctx context.Context, p Policy) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for _, f := range e.Tables.families() {
		errs = append(errs, e.install(ctx, f, p))
	}
	return errors.Join(errs...)
}

// Sync checks the installed rules and makes them match p: drift (rules
// missing or altered since the last install) is returned, and repaired; a
// policy that changed (new resolvers, host addresses or allow-list) is
// simply installed. err says what could not be installed.
func (e *Enforcer) Sync(ctx context.Context, p Policy) (drift, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var drifts, errs []error
	for _, f := range e.Tables.families() {
		last := e.last[f]
		if last != nil {
			d := e.verify(ctx, f, last)
			if d == nil && last.gid == p.GID && slices.EqualFunc(last.spec, p.Rules(f), slices.Equal) {
				continue
			}
			drifts = append(drifts, d)
		}
		errs = append(errs, e.install(ctx, f, p))
	}
	return errors.Join(drifts...), errors.Join(errs...)
}

// Verify reports drift from what was installed, without repairing it.
func (e *Enforcer) Verify(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for _, f := range e.Tables.families() {
		if last := e.last[f]; last != nil {
			errs = append(errs, e.verify(ctx, f, last))
		}
	}
	return errors.Join(errs...)
}

// install replaces the chain's contents and adds the jump if it is
// missing, in one iptables-restore transaction, so the chain is never
// seen half-filled. With --noflush only the chain declared is flushed;
// the rest of the table is left alone.
func (e *Enforcer) install(ctx context.Context, f Family, p Policy) error {
	chain, jump, spec := ChainName(p.GID), p.Jump(), p.Rules(f)
	var b strings.Builder
	fmt.Fprintf(&b, "*filter\n:%s - [0:0]\n", chain)
	for _, r := range spec {
		fmt.Fprintf(&b, "-A %s %s\n", chain, restoreArgs(r))
	}
	if _, err := e.Tables.run(ctx, f, nil, append([]string{"-C", "OUTPUT"}, jump...)...); err != nil {
		// First in OUTPUT, so no earlier ACCEPT lets guests around it.
		fmt.Fprintf(&b, "-I OUTPUT 1 %s\n", restoreArgs(jump))
	}
	b.WriteString("COMMIT\n")
	if _, err := e.Tables.run(ctx, f, []byte(b.String()), "--noflush"); err != nil {
		return fmt.Errorf("install the egress policy (%s): %w", f, err)
	}
	if f == IPv4 && e.Tables.Netns == "" {
		e.removeLegacy(ctx, p.GID)
	}
	snap, err := e.readBack(ctx, f, chain)
	if err != nil {
		return err
	}
	snap.gid, snap.spec = p.GID, spec
	if e.last == nil {
		e.last = map[Family]*snapshot{}
	}
	e.last[f] = snap
	return nil
}

func (e *Enforcer) removeLegacy(ctx context.Context, gid int) {
	for _, r := range legacyRules(gid) {
		for i := 0; i < 10; i++ { // duplicates from restarts of old versions
			if _, err := e.Tables.run(ctx, IPv4, nil, append([]string{"-D", "OUTPUT"}, r...)...); err != nil {
				break
			}
		}
	}
}

// readBack records the chain and its jump as iptables prints them.
func (e *Enforcer) readBack(ctx context.Context, f Family, chain string) (*snapshot, error) {
	out, err := e.Tables.run(ctx, f, nil, "-S")
	if err != nil {
		return nil, fmt.Errorf("read back the egress policy (%s): %w", f, err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	snap := &snapshot{chain: chainRules(lines, chain)}
	for _, l := range chainRules(lines, "OUTPUT") {
		if strings.HasSuffix(l, " -j "+chain) {
			snap.jump = l
		}
	}
	if snap.jump == "" {
		return nil, fmt.Errorf("the egress policy (%s): installed, but OUTPUT shows no jump to %s", f, chain)
	}
	return snap, nil
}

func chainRules(lines []string, chain string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, "-A "+chain+" ") {
			out = append(out, l)
		}
	}
	return out
}

// verify compares the kernel's rules with the snapshot. A failure to read
// them is returned as drift too (though not a *Drift): the driver cannot
// vouch for rules it cannot see.
func (e *Enforcer) verify(ctx context.Context, f Family, last *snapshot) error {
	chain := ChainName(last.gid)
	where := e.Tables.binary(f)
	out, err := e.Tables.run(ctx, f, nil, "-S")
	if err != nil {
		return fmt.Errorf("cannot read the rules: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !slices.Contains(lines, "-N "+chain) {
		return &Drift{Missing: true, Problem: fmt.Sprintf("chain %s not found in %s (firewall reloaded?)", chain, where)}
	}
	if !slices.Contains(lines, last.jump) {
		return &Drift{Missing: true, Problem: fmt.Sprintf("the %s rule sending group %d to chain %s is gone from OUTPUT", where, last.gid, chain)}
	}
	return compareChain(chain, where, chainRules(lines, chain), last.chain)
}

func compareChain(chain, where string, got, want []string) error {
	for i := 0; i < len(got) || i < len(want); i++ {
		switch {
		case i >= len(got):
			return &Drift{Problem: fmt.Sprintf("chain %s in %s lost rule %d of %d: %s", chain, where, i+1, len(want), want[i])}
		case i >= len(want):
			return &Drift{Problem: fmt.Sprintf("chain %s in %s has an extra rule %d: %s", chain, where, i+1, got[i])}
		case got[i] != want[i]:
			return &Drift{Problem: fmt.Sprintf("chain %s in %s: rule %d is %q, want %q", chain, where, i+1, got[i], want[i])}
		}
	}
	return nil
}

// Remove deletes the jump and the chain for gid, in every family (tests
// and uninstalls use it).
func (e *Enforcer) Remove(ctx context.Context, gid int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	chain := ChainName(gid)
	jump := Policy{GID: gid}.Jump()
	for _, f := range e.Tables.families() {
		for i := 0; i < 10; i++ {
			if _, err := e.Tables.run(ctx, f, nil, append([]string{"-D", "OUTPUT"}, jump...)...); err != nil {
				break
			}
		}
		e.Tables.run(ctx, f, nil, "-F", chain)
		e.Tables.run(ctx, f, nil, "-X", chain)
		delete(e.last, f)
	}
}

// restoreArgs joins a rule for iptables-restore, quoting arguments with
// spaces (comments). Rule texts come from this package and never hold a
// double quote.
func restoreArgs(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t") {
			a = `"` + a + `"`
		}
		quoted[i] = a
	}
	return strings.Join(quoted, " ")
}
