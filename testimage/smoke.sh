#!/usr/bin/env bash
# Smoke test of the solstice-test image:
#
#   testimage/smoke.sh IMAGE [COUNT]
#
# For each of COUNT runs (default 1): boots IMAGE from a fresh qcow2 overlay
# under QEMU/TCG with a new NoCloud seed (its own ed25519 key for user
# solstice), waits for an SSH login, runs a few checks in the guest, presses
# the ACPI power button over QMP and requires QEMU to exit by itself within
# 30 s. Prints the boot-to-SSH seconds per run and checks that IMAGE's
# sha256 did not change. Exits non-zero on any failure.
#
# QEMU runs with the devices the Solstice driver uses (driver/qemu): -M pc,
# TCG, -cpu max, virtio-blk disk, IDE CD-ROM seed, virtio-net with a
# 127.0.0.1 host forward to port 22, virtio-rng, serial console to a file.
#
# Environment: SMOKE_SMP (default 1), SMOKE_MINIMAL=1 (the bare contract:
# default CPU model, no virtio-rng), SMOKE_KEEP=1 keeps the temp dir,
# SMOKE_SSH_TIMEOUT (default 60 s).
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: $0 IMAGE [COUNT]" >&2; exit 2; }
IMAGE=$(realpath "$1")
COUNT=${2:-1}
SMP=${SMOKE_SMP:-1}
SSH_TIMEOUT=${SMOKE_SSH_TIMEOUT:-60}

need() { command -v "$1" >/dev/null || { echo "smoke: missing $1 ($2)" >&2; exit 1; }; }
need qemu-system-x86_64 "apt-get install qemu-system-x86"
need qemu-img "apt-get install qemu-utils"
need ssh "apt-get install openssh-client"
need ssh-keygen "apt-get install openssh-client"
need socat "apt-get install socat"
if command -v genisoimage >/dev/null; then
  mkiso() { genisoimage -quiet -V cidata -J -r -o "$@"; }
elif command -v xorriso >/dev/null; then
  mkiso() { xorriso -as mkisofs -quiet -V cidata -J -r -o "$@"; }
else
  echo "smoke: missing genisoimage or xorriso (apt-get install genisoimage)" >&2
  exit 1
fi

T=$(mktemp -d /tmp/solstice-smoke.XXXXXX)
QPID=
cleanup() {
  if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then kill -9 "$QPID" 2>/dev/null || true; fi
  if [ -n "${SMOKE_KEEP:-}" ]; then echo "smoke: kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 40000))
    [ -z "$(ss -Htln "sport = :$p")" ] && { echo "$p"; return; }
  done
  echo "smoke: no free port" >&2
  exit 1
}

qmp() { # qmp COMMAND...: sends each JSON command after the capabilities handshake
  { echo '{"execute":"qmp_capabilities"}'; for c in "$@"; do echo "$c"; done; sleep 0.5; } |
    socat -t 2 - "UNIX-CONNECT:$T/run/qmp.sock" >"$T/run/qmp.out" 2>&1 || true
}

sha_before=$(sha256sum "$IMAGE" | cut -d' ' -f1)
boot_times=()
fail() {
  echo "smoke: FAIL: $*" >&2
  echo "---- serial console ($T/run/serial.log) ----" >&2
  tail -n 60 "$T/run/serial.log" >&2 || true
  exit 1
}

for run in $(seq "$COUNT"); do
  rm -rf "$T/run"
  mkdir -p "$T/run/seed"
  R=$T/run
  qemu-img create -q -f qcow2 -b "$IMAGE" -F qcow2 "$R/overlay.qcow2"
  ssh-keygen -q -t ed25519 -N '' -C "smoke-$run" -f "$R/key"
  cat >"$R/seed/meta-data" <<EOF
instance-id: smoke-$$-$run
local-hostname: smoke-$run
EOF
  cat >"$R/seed/user-data" <<EOF
#cloud-config
users:
  - name: solstice
    sudo: ALL=(ALL) NOPASSWD:ALL
    shell: /bin/bash
    ssh_authorized_keys:
      - $(cat "$R/key.pub")
EOF
  mkiso "$R/seed.iso" "$R/seed/meta-data" "$R/seed/user-data"
  PORT=$(free_port)

  extra=(-cpu max -device virtio-rng-pci)
  [ -n "${SMOKE_MINIMAL:-}" ] && extra=()
  t0=$(now)
  qemu-system-x86_64 -M pc -accel tcg -m 512 -smp "$SMP" -nodefaults -no-user-config -display none \
    "${extra[@]}" \
    -drive "file=$R/overlay.qcow2,if=virtio,format=qcow2,cache=unsafe,discard=unmap" \
    -drive "file=$R/seed.iso,media=cdrom,if=ide,format=raw,readonly=on" \
    -netdev "user,id=n0,ipv6=off,hostfwd=tcp:127.0.0.1:$PORT-:22" -device virtio-net-pci,netdev=n0 \
    -serial "file:$R/serial.log" \
    -qmp "unix:$R/qmp.sock,server=on,wait=off" \
    -pidfile "$R/qemu.pid" </dev/null >"$R/qemu.out" 2>&1 &
  QPID=$!

  SSH=(ssh -q -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes
    -o ConnectTimeout=3 -o LogLevel=ERROR -i "$R/key" -p "$PORT" solstice@127.0.0.1)
  # An SSH attempt made before the guest has its DHCP address is held by
  # slirp for seconds, so attempts start once the console says
  # "solstice-test: sshd ready" (or, in case it never does, every 3 s after
  # the first 20 s). A driver should do the same.
  t_ssh='' t_ready='' last_try=$(awk -v t="$t0" 'BEGIN { printf "%.3f", t + 17 }')
  while :; do
    kill -0 "$QPID" 2>/dev/null || fail "run $run: QEMU exited early: $(cat "$R/qemu.out")"
    t=$(now)
    if [ -z "$t_ready" ] && grep -q 'solstice-test: sshd ready' "$R/serial.log" 2>/dev/null; then
      t_ready=$t
    fi
    if [ -n "$t_ready" ] || [ "$(elapsed "$last_try" "$t" | cut -d. -f1)" -ge 3 ]; then
      last_try=$t
      if "${SSH[@]}" true </dev/null 2>/dev/null; then t_ssh=$(now); break; fi
    fi
    [ "$(elapsed "$t0" "$t" | cut -d. -f1)" -ge "$SSH_TIMEOUT" ] && fail "run $run: no SSH login within ${SSH_TIMEOUT}s"
    sleep 0.1
  done
  boot=$(elapsed "$t0" "$t_ssh")
  boot_times+=("$boot")
  echo "smoke: run $run: SSH login after ${boot}s (readiness line after $(elapsed "$t0" "${t_ready:-$t_ssh}")s)"

  out=$("${SSH[@]}" 'uname -a; bash --version | head -1; git --version; sudo -n true && echo sudo-ok; df -m /; hostname; id
    for c in sh bash git tar gzip xz bzip2 find xargs grep sed awk ps sudo curl ssh scp; do
      command -v $c >/dev/null || echo "missing $c"
    done
    [ -s /etc/ssl/certs/ca-certificates.crt ] || echo "missing ca-certificates"' </dev/null) ||
    fail "run $run: guest command failed"
  echo "$out" | sed 's/^/  guest: /'
  grep -qx sudo-ok <<<"$out" || fail "run $run: passwordless sudo does not work"
  ! grep '^missing ' <<<"$out" || fail "run $run: tools missing in the guest"
  grep -qx "smoke-$run" <<<"$out" || fail "run $run: hostname not set from meta-data"
  avail=$(awk '$NF == "/" { print $4 }' <<<"$out")
  [ "${avail:-0}" -ge 512 ] || fail "run $run: only ${avail:-?} MiB free on /"
  grep -q 'solstice-test: sshd ready' "$R/serial.log" || fail "run $run: no readiness line on the serial console"

  t1=$(now)
  qmp '{"execute":"system_powerdown"}'
  for _ in $(seq 300); do
    kill -0 "$QPID" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$QPID" 2>/dev/null && fail "run $run: QEMU still running 30 s after system_powerdown"
  wait "$QPID" || fail "run $run: QEMU exited with status $?"
  QPID=
  grep -q 'solstice-test: power button' "$R/serial.log" || fail "run $run: no power-button line on the console"
  echo "smoke: run $run: powered off $(elapsed "$t1" "$(now)")s after system_powerdown"
done

sha_after=$(sha256sum "$IMAGE" | cut -d' ' -f1)
[ "$sha_before" = "$sha_after" ] || fail "the base image changed ($sha_before -> $sha_after)"
printf 'smoke: boot-to-SSH seconds: %s (min %s, max %s); base image unchanged (%s)\n' \
  "${boot_times[*]}" \
  "$(printf '%s\n' "${boot_times[@]}" | sort -n | head -1)" \
  "$(printf '%s\n' "${boot_times[@]}" | sort -n | tail -1)" "${sha_after:0:16}"
echo "smoke: $COUNT passed, 0 failed"
