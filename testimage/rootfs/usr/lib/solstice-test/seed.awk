# seed.awk: reads the subset of a NoCloud seed that solstice-test honours.
# POSIX awk (runs under mawk, gawk and busybox awk).
#
#   awk -v what=meta-data -f seed.awk meta-data
#   awk -v what=user-data [-v default_user=solstice] -f seed.awk user-data
#
# Prints tab-separated records, "-" standing for an empty field:
#   instance-id  ID                  (meta-data)
#   hostname     NAME                (meta-data local-hostname; user-data hostname/fqdn)
#   user         NAME  SHELL  HOME   (one per user, before that user's other records)
#   sudo         NAME  RULE          (one per sudoers rule)
#   group        NAME  GROUP         (one per supplementary group)
#   key          NAME  KEY           (one per ssh_authorized_keys entry)
#   hostkey      ed25519  private  LINE  (one per line of ssh_keys' ed25519_private, in order)
#   hostkey      ed25519  public   KEY   (ssh_keys' ed25519_public)
#   warn         MESSAGE             (something ignored or malformed)
#
# The YAML subset (user-data, after its "#cloud-config" line):
#   - block mappings and block sequences by indentation, with a sequence either
#     indented under its key or at the key's own indentation ("compact");
#   - scalars plain, 'single-quoted' ('' is a quote) or "double-quoted"
#     (\" \\ \t \n escapes); comments (" #..." outside quotes);
#   - one-line flow sequences: [a, "b", 'c'];
#   - literal block scalars (|, |-, |+) for ssh_keys' private keys only;
#   - no anchors, aliases, tags, flow mappings or other multi-line scalars.
# Keys used: users (default | NAME | mapping with name, sudo, shell, homedir,
# groups, ssh_authorized_keys / ssh-authorized-keys), top-level
# ssh_authorized_keys (given to the default user), ssh_keys (ed25519_private
# and ed25519_public: the host key, as cloud-init installs it), hostname,
# fqdn. meta-data may be YAML or JSON: instance-id, local-hostname (hostname
# as a fallback).

BEGIN {
  if (default_user == "") default_user = "solstice"
  default_shell = "/bin/bash"
  default_sudo = "ALL=(ALL) NOPASSWD:ALL"
  top = ""; users_seen = 0; had_default = 0; ntop = 0
  uitem = -1; uactive = 0
  blk = ""; blk_key_ind = -1; blk_ind = -1
  md_host = ""; md_hostname = ""; ud_host = ""; ud_fqdn = ""
}

# ---- helpers ---------------------------------------------------------------

function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }

function field(s) { gsub(/[\t\r\n]/, " ", s); return s == "" ? "-" : s }

function out2(a, b) { print a "\t" field(b) }
function out3(a, b, c) { print a "\t" field(b) "\t" field(c) }

function warn(m) { out2("warn", m) }

# Drops a trailing comment: '#' at the start or after a blank, outside quotes.
function strip_comment(s,    i, n, c, p, q) {
  n = length(s); q = ""; p = ""
  for (i = 1; i <= n; i++) {
    c = substr(s, i, 1)
    if (q == "'") {
      if (c == "'") { if (substr(s, i + 1, 1) == "'") i++; else q = "" }
    } else if (q == "\"") {
      if (c == "\\") i++
      else if (c == "\"") q = ""
    } else if ((c == "'" || c == "\"") && (i == 1 || p == " " || p == "\t" || p == "[" || p == ",")) {
      q = c
    } else if (c == "#" && (i == 1 || p == " " || p == "\t")) {
      return trim(substr(s, 1, i - 1))
    }
    p = c
  }
  return trim(s)
}

# The value of a scalar: quotes removed and escapes resolved.
function unq(s,    n, i, c, r) {
  s = trim(s); n = length(s)
  if (n >= 2 && substr(s, 1, 1) == "'" && substr(s, n, 1) == "'") {
    s = substr(s, 2, n - 2); gsub(/''/, "'", s); return s
  }
  if (n >= 2 && substr(s, 1, 1) == "\"" && substr(s, n, 1) == "\"") {
    s = substr(s, 2, n - 2); n = length(s); r = ""
    for (i = 1; i <= n; i++) {
      c = substr(s, i, 1)
      if (c == "\\" && i < n) {
        i++; c = substr(s, i, 1)
        if (c == "t" || c == "n") c = " "
      }
      r = r c
    }
    return r
  }
  if (s == "~" || s == "null" || s == "Null" || s == "NULL") return ""
  return s
}

function is_false(s) {
  return s == "" || s == "false" || s == "False" || s == "FALSE" || s == "no" || s == "No"
}

# Splits a one-line flow sequence "[a, 'b']" into FLOW[1..n]; returns n, or
# -1 when s is not a flow sequence.
function flow(s,    n, i, c, q, cur, m) {
  s = trim(s); n = length(s)
  if (substr(s, 1, 1) != "[") return -1
  if (substr(s, n, 1) != "]") { warn("unterminated flow sequence: " s); return 0 }
  s = substr(s, 2, n - 2); n = length(s); m = 0; q = ""; cur = ""
  for (i = 1; i <= n; i++) {
    c = substr(s, i, 1)
    if (q == "'") { if (c == "'") q = "" }
    else if (q == "\"") { if (c == "\\") { cur = cur c; i++; c = substr(s, i, 1) } else if (c == "\"") q = "" }
    else if (c == "'" || c == "\"") q = c
    else if (c == ",") { cur = unq(cur); if (cur != "") FLOW[++m] = cur; cur = ""; continue }
    cur = cur c
  }
  cur = unq(cur); if (cur != "") FLOW[++m] = cur
  return m
}

# "key: value" -> KV_K, KV_V (value still raw); returns 0 when s is no pair.
function split_kv(s,    c, j, n, rest) {
  c = substr(s, 1, 1)
  if (c == "'" || c == "\"") {
    n = length(s)
    for (j = 2; j <= n; j++) {
      if (substr(s, j, 1) == "\\" && c == "\"") { j++; continue }
      if (substr(s, j, 1) == c) break
    }
    if (j > n) return 0
    KV_K = unq(substr(s, 1, j)); rest = substr(s, j + 1)
    if (!match(rest, /^[ \t]*:/)) return 0
    rest = substr(rest, RLENGTH + 1)
  } else {
    if (!match(s, /^[A-Za-z0-9_.-]+[ \t]*:/)) return 0
    KV_K = trim(substr(s, 1, RLENGTH - 1)); rest = substr(s, RLENGTH + 1)
  }
  if (rest != "" && substr(rest, 1, 1) != " " && substr(rest, 1, 1) != "\t") return 0
  KV_V = trim(rest)
  return 1
}

function is_item(s) { return s == "-" || substr(s, 1, 2) == "- " || substr(s, 1, 2) == "-\t" }

# ---- users -----------------------------------------------------------------

function start_user() {
  uactive = 1; u_default = 0; u_name = ""; u_shell = ""; u_home = ""
  nsudo = 0; ngroups = 0; nkeys = 0; ulist = ""; ukey = -1
}

function add(list, v,    i, m) {
  if (list == "sudo") {
    if (is_false(v)) return
    if (v == "true" || v == "True") { warn("sudo: true is not a rule; ignored"); return }
    USUDO[++nsudo] = v
  } else if (list == "groups") {
    m = split(v, PARTS, ",")
    for (i = 1; i <= m; i++) { PARTS[i] = trim(PARTS[i]); if (PARTS[i] != "") UGROUPS[++ngroups] = PARTS[i] }
  } else if (list == "keys") {
    if (v != "") UKEYS[++nkeys] = v
  }
}

# A scalar, a flow sequence or (empty value) the start of a block sequence.
function user_list(list, v,    i, m) {
  if (v == "") { ulist = list; return }
  m = flow(v)
  if (m < 0) { add(list, unq(v)); return }
  for (i = 1; i <= m; i++) add(list, FLOW[i])
}

function user_kv(k, v) {
  ulist = ""
  if (k == "name") u_name = unq(v)
  else if (k == "shell") u_shell = unq(v)
  else if (k == "homedir") u_home = unq(v)
  else if (k == "sudo") user_list("sudo", v)
  else if (k == "groups") user_list("groups", v)
  else if (k == "ssh_authorized_keys" || k == "ssh-authorized-keys") user_list("keys", v)
  else if (v == "") ulist = "ignored"
}

function flush_user(    i, name) {
  if (!uactive) return
  uactive = 0
  if (u_default) {
    name = default_user; had_default = 1
    print "user\t" name "\t" default_shell "\t-"
    out3("sudo", name, default_sudo)
    return
  }
  name = u_name
  if (name == "") { warn("a users entry has no name; ignored"); return }
  print "user\t" field(name) "\t" field(u_shell) "\t" field(u_home)
  for (i = 1; i <= nsudo; i++) out3("sudo", name, USUDO[i])
  for (i = 1; i <= ngroups; i++) out3("group", name, UGROUPS[i])
  for (i = 1; i <= nkeys; i++) out3("key", name, UKEYS[i])
}

function users_scalar(s) {
  start_user()
  if (s == "default") u_default = 1; else u_name = s
  flush_user()
}

function users_line(ind, c,    rest, rcol, i, m) {
  if (is_item(c)) {
    rest = trim(substr(c, 2)); rcol = ind + length(c) - length(rest)
    if (uitem < 0) uitem = ind
    if (ind == uitem) {
      flush_user(); start_user()
      if (rest == "") return
      if (split_kv(rest)) { ukey = rcol; user_kv(KV_K, KV_V); return }
      rest = unq(rest)
      if (rest == "default") u_default = 1; else u_name = rest
      return
    }
    if (uactive && ulist != "" && ind >= ukey) {
      if (ulist != "ignored") add(ulist, unq(rest))
      return
    }
    warn("unexpected line in users: " c)
    return
  }
  if (!uactive) { warn("unexpected line in users: " c); return }
  if (ukey < 0) ukey = ind
  if (ind == ukey && split_kv(c)) { user_kv(KV_K, KV_V); return }
  if (ind > ukey && ulist != "") return   # nested content of an ignored key
  warn("unexpected line in users: " c)
}

# ---- ssh_keys ----------------------------------------------------------------

# One "TYPE_private: |" or "TYPE_public: KEY" line under ssh_keys. A private
# key is a literal block: its lines follow, more indented (see block_line).
function sshkeys_line(ind, c,    type, half) {
  if (!split_kv(c)) { warn("unexpected line in ssh_keys: " c); return }
  if (!match(KV_K, /^[a-z0-9]+_(private|public|certificate)$/)) {
    warn("ssh_keys key ignored: " KV_K)
    if (KV_V ~ /^[|>]/) start_block("skip", ind)
    return
  }
  type = substr(KV_K, 1, index(KV_K, "_") - 1); half = substr(KV_K, length(type) + 2)
  if (type != "ed25519" || half == "certificate") {
    warn("ssh_keys: " KV_K " ignored (only ed25519 host keys)")
    if (KV_V ~ /^[|>]/) start_block("skip", ind)
    return
  }
  if (half == "public") { print "hostkey\ted25519\tpublic\t" field(unq(KV_V)); return }
  if (KV_V == "|" || KV_V == "|-" || KV_V == "|+") { start_block("private", ind); return }
  warn("ssh_keys: ed25519_private must be a literal block scalar; ignored")
  if (KV_V ~ /^[|>]/) start_block("skip", ind)
}

function start_block(kind, ind) { blk = kind; blk_key_ind = ind; blk_ind = -1 }

# A line of a block scalar: more indented than its key. Returns 0 (and ends
# the block) for the first line that is not.
function block_line(ind, line) {
  if (ind <= blk_key_ind || (blk_ind >= 0 && ind < blk_ind)) { blk = ""; return 0 }
  if (blk_ind < 0) blk_ind = ind
  if (blk == "private") print "hostkey\ted25519\tprivate\t" field(substr(line, blk_ind + 1))
  return 1
}

# ---- lines -----------------------------------------------------------------

function meta_line(c,    n, i, q, ch, cur, parts, m) {
  # YAML "key: value" lines or JSON, one or more pairs per line.
  sub(/^[{ \t]+/, "", c); sub(/[}, \t]+$/, "", c)
  n = length(c); q = ""; cur = ""; m = 0
  for (i = 1; i <= n; i++) {
    ch = substr(c, i, 1)
    if (q != "") { if (ch == "\\" && q == "\"") { cur = cur ch; i++; ch = substr(c, i, 1) } else if (ch == q) q = "" }
    else if (ch == "'" || ch == "\"") q = ch
    else if (ch == ",") { parts[++m] = trim(cur); cur = ""; continue }
    cur = cur ch
  }
  parts[++m] = trim(cur)
  for (i = 1; i <= m; i++) {
    if (!split_kv(parts[i])) continue
    if (KV_K == "instance-id") out2("instance-id", unq(KV_V))
    else if (KV_K == "local-hostname") md_host = unq(KV_V)
    else if (KV_K == "hostname") md_hostname = unq(KV_V)
  }
}

{
  line = $0
  sub(/\r$/, "", line)
  ind = match(line, /[^ ]/) - 1
  if (ind < 0) next
  if (blk != "" && block_line(ind, line)) next
  c = strip_comment(substr(line, ind + 1))
  if (c == "") next
  if (what == "meta-data") { meta_line(c); next }
  if (ind == 0 && (c == "---" || c == "...")) next

  if (ind == 0 && !is_item(c)) {
    flush_user(); top = ""
    if (!split_kv(c)) { warn("not a key: " c); next }
    top = KV_K; v = KV_V
    if (top == "users") {
      users_seen = 1; uitem = -1
      if (v != "") {
        m = flow(v)
        if (m < 0) { m = split(unq(v), FLOW, ","); for (i = 1; i <= m; i++) FLOW[i] = trim(FLOW[i]) }
        for (i = 1; i <= m; i++) if (FLOW[i] != "") users_scalar(FLOW[i])
      }
    } else if (top == "ssh_authorized_keys" || top == "ssh-authorized-keys") {
      top = "keys"
      if (v != "") {
        m = flow(v)
        if (m < 0) TOPKEYS[++ntop] = unq(v)
        for (i = 1; i <= m; i++) TOPKEYS[++ntop] = FLOW[i]
      }
    } else if (top == "hostname") {
      ud_host = unq(v)
    } else if (top == "fqdn") {
      ud_fqdn = unq(v)
    } else if (top == "ssh_keys") {
      if (v != "") { warn("ssh_keys must be a block mapping; ignored"); top = "" }
    } else {
      warn("cloud-config key ignored: " top)
    }
    next
  }

  if (top == "users") users_line(ind, c)
  else if (top == "ssh_keys") sshkeys_line(ind, c)
  else if (top == "keys" && is_item(c)) { v = unq(substr(c, 2)); if (v != "") TOPKEYS[++ntop] = v }
}

END {
  if (what == "meta-data") {
    if (md_host == "") md_host = md_hostname
    if (md_host != "") out2("hostname", md_host)
    exit
  }
  flush_user()
  if (!users_seen) users_scalar("default")
  if (ntop > 0) {
    if (had_default) for (i = 1; i <= ntop; i++) out3("key", default_user, TOPKEYS[i])
    else warn("top-level ssh_authorized_keys ignored: users has no default entry")
  }
  if (ud_host != "") out2("hostname", ud_host)
  else if (ud_fqdn != "") out2("hostname", ud_fqdn)
}
