#!/usr/bin/env bash
# Installs the Debian packages Solstice's tests and demo need, only those
# that are missing, so that a second run costs nothing.
set -euo pipefail

packages=(
  qemu-system-x86   # the VMs
  qemu-utils        # qemu-img: overlays and image checks
  genisoimage       # isoinfo: tests read the NoCloud seed back
  iproute2          # ip netns: test hosts the guest can reach
  iptables          # the guests' egress policy (iptables, ip6tables and their -restore)
  containernetworking-plugins  # CNI for bridge-networked task groups
  util-linux        # nsenter: QEMU inside an allocation's namespace
  openssh-client    # ssh-keygen in scripts and tests
  socat             # testimage/smoke.sh talks to the guest's serial console
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
