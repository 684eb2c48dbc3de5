#!/usr/bin/env bash
# Builds the solstice-test guest image from Debian packages:
#
#   testimage/build.sh OUTDIR [FLAVOUR]    (as root)
#
# writes OUTDIR/solstice-test.qcow2, OUTDIR/solstice-test.qcow2.sha256 and
# OUTDIR/solstice-test.manifest (the Debian packages inside). See README.md
# for what the image is and the contract it honours.
#
# FLAVOUR "cloudinit" builds the cloud-init flavour instead
# (solstice-cloudinit.qcow2, versioned by cloudinit/VERSION): the same
# image plus Debian's cloud-init package, which reads the NoCloud seed in
# place of our own seed reader (see README.md, "The cloud-init flavour").
#
# Steps: mmdebstrap a small Debian root from the host's Debian apt sources;
# fetch Debian's cloud kernel; add our files from testimage/rootfs; make a
# busybox initramfs with the few driver modules; lay it all out as a
# whole-disk ext2 file system (no partition table) with extlinux in its boot
# sector; convert to a compressed qcow2.
#
# Idempotent: a run whose OUTDIR already holds an image of the same recipe
# (testimage/ files and VERSION) only checks its sha256 and returns; set
# SOLSTICE_IMAGE_FORCE=1 to rebuild anyway. Concurrent runs on one OUTDIR
# wait for each other.
#
# Environment:
#   SOLSTICE_IMAGE_FORCE=1        rebuild even if OUTDIR is current
#   SOLSTICE_IMAGE_SOURCES=FILE   apt sources for the guest (a sources.list or
#                                 deb822 file); default: the host's Debian ones
#   SOLSTICE_IMAGE_DISK_SIZE=4G   size of the root file system (sparse)
set -euo pipefail

SUITE=bookworm
DISK_SIZE=${SOLSTICE_IMAGE_DISK_SIZE:-4G}
ROOT_LABEL=solstice-root
KERNEL_META=linux-image-cloud-amd64
IMAGE=solstice-test.qcow2

# What the guest gets on top of Debian's Essential set.
PACKAGES=(
  busybox-static       # init, acpid, udhcpc, syslogd
  openssh-server openssh-client
  sudo passwd          # sudo, useradd
  bash git tar gzip xz-utils bzip2
  coreutils findutils grep sed mawk diffutils
  procps util-linux mount hostname
  ca-certificates curl netbase less
)

# Driver modules loaded by the initramfs (plus their dependencies). Debian's
# cloud kernel has no AHCI or e1000 driver: use -M pc with virtio or IDE.
MODULES=(
  virtio_pci virtio_blk virtio_scsi virtio_net virtio-rng  # virtio disk, NIC, RNG
  virtio_console                                           # the warm-start agent port
  button evdev                                             # ACPI power button
)
MODULES_LATE=( # loaded in the background
  ata_piix ata_generic sd_mod sr_mod                       # IDE disk / CD-ROM
  isofs vfat nls_cp437 nls_ascii nls_utf8                  # the cidata seed
)

# busybox applets the boot script runs instead of Debian's dynamic binaries.
BOOT_APPLETS=(acpid awk cat chmod chown cp cut date findfs grep head hostname ip
  ln mkdir mount rm rmdir sed sleep syslogd tr udhcpc umount uname)

KERNEL_CMDLINE="console=ttyS0,115200 root=LABEL=$ROOT_LABEL rw panic=10 mitigations=off cryptomgr.notests"

BUILD_DEPS=(mmdebstrap extlinux syslinux-common e2fsprogs qemu-utils cpio gzip)

log() { printf '%s build.sh: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ $# -eq 1 ] || [ $# -eq 2 ] || { echo "usage: $0 OUTDIR [cloudinit]" >&2; exit 2; }
FLAVOUR=${2:-plain}
APTOPTS=()
[ "$(id -u)" -eq 0 ] || die "must run as root (mmdebstrap in root mode, loop mount for extlinux)"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$1"
OUTDIR=$(cd "$1" && pwd)
VERSION=$(tr -d '[:space:]' <"$HERE/VERSION")
case "$FLAVOUR" in
  plain) ;;
  cloudinit)
    IMAGE=solstice-cloudinit.qcow2
    VERSION=$VERSION-cloudinit-$(tr -d '[:space:]' <"$HERE/cloudinit/VERSION")
    # python3 and cloud-init's modules come as its dependencies (no
    # Recommends: see the mmdebstrap call).
    PACKAGES+=(cloud-init)
    APTOPTS=(--aptopt='APT::Install-Recommends "false"') ;;
  *) die "unknown flavour $FLAVOUR (plain or cloudinit)" ;;
esac
MANIFEST=${IMAGE%.qcow2}.manifest

# ---- one build at a time per OUTDIR; skip when current ----------------------
exec 9>"$OUTDIR/.lock"
flock 9

recipe_hash() {
  (
    cd "$HERE"
    dirs=(initramfs rootfs)
    [ "$FLAVOUR" = plain ] || dirs+=("$FLAVOUR")
    find build.sh VERSION "${dirs[@]}" -type f -print0 | LC_ALL=C sort -z |
      xargs -0 sha256sum
    find "${dirs[@]}" -type f -perm -u+x -print | LC_ALL=C sort
    echo "$DISK_SIZE $FLAVOUR"
  ) | sha256sum | cut -d' ' -f1
}
RECIPE=$(recipe_hash)

if [ -z "${SOLSTICE_IMAGE_FORCE:-}" ] && [ -f "$OUTDIR/$IMAGE" ] && [ -f "$OUTDIR/$IMAGE.sha256" ] &&
  [ "$(cat "$OUTDIR/.recipe" 2>/dev/null)" = "$RECIPE" ] &&
  (cd "$OUTDIR" && sha256sum --quiet -c "$IMAGE.sha256"); then
  touch "$OUTDIR/$IMAGE" "$OUTDIR/$IMAGE.sha256"
  log "$OUTDIR/$IMAGE is current (version $VERSION); SOLSTICE_IMAGE_FORCE=1 rebuilds"
  exit 0
fi

# ---- build dependencies ---------------------------------------------------
missing=()
for p in "${BUILD_DEPS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing build dependencies: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  }
fi

# ---- work area (cleaned on entry and exit) ---------------------------------
WORK=$OUTDIR/.work
cleanup() {
  # Anything still mounted below the work area (the loop mount, or what an
  # interrupted mmdebstrap left in the chroot) goes first, deepest first;
  # --one-file-system keeps rm out of anything that could not be unmounted.
  awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
  rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT
cleanup
mkdir -p "$WORK/kernel" "$WORK/mnt"
ROOT=$WORK/root
START=$SECONDS

# ---- Debian root file system ------------------------------------------------
sources=()
if [ -n "${SOLSTICE_IMAGE_SOURCES:-}" ]; then
  sources=("$SOLSTICE_IMAGE_SOURCES")
elif [ -s /etc/apt/sources.list.d/debian.sources ]; then
  sources=(/etc/apt/sources.list.d/debian.sources)
elif grep -qs '^deb ' /etc/apt/sources.list; then
  sources=(/etc/apt/sources.list)
fi # else mmdebstrap's default Debian mirror

log "mmdebstrap $SUITE (${#PACKAGES[@]} packages on top of Essential)"
export SOLSTICE_KDIR=$WORK/kernel SOLSTICE_KMETA=$KERNEL_META
# The customize hook runs with mmdebstrap's apt configuration, so the kernel
# comes from the same fresh package lists as the rest.
mmdebstrap --mode=root --variant=essential --format=directory --quiet \
  "${APTOPTS[@]}" \
  --include="$(IFS=,; echo "${PACKAGES[*]}")" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --customize-hook='set -e; cd "$SOLSTICE_KDIR";
    pkg=$(apt-cache depends "$SOLSTICE_KMETA" | sed -n "s/^ *Depends: \(linux-image-[^ ]*\)$/\1/p" | head -n1);
    [ -n "$pkg" ]; apt-get download -q=2 "$pkg" 2>/dev/null || apt-get download -q=2 "$pkg"' \
  "$SUITE" "$ROOT" "${sources[@]}"

# ---- kernel -------------------------------------------------------------------
kdeb=$(ls "$WORK"/kernel/linux-image-*.deb)
log "kernel: ${kdeb##*/}"
dpkg-deb -x "$kdeb" "$WORK/kernel/x"
KVER=$(ls "$WORK/kernel/x/lib/modules")
KMOD=$WORK/kernel/x/lib/modules/$KVER
mkdir -p "$ROOT/boot/extlinux"
cp "$WORK/kernel/x/boot/vmlinuz-$KVER" "$ROOT/boot/vmlinuz"
cp "$WORK/kernel/x/boot/config-$KVER" "$ROOT/boot/config"

# ---- our files ------------------------------------------------------------------
# Copied with normalised modes (the checkout's umask must not leak in) and
# without touching the modes of directories that already exist.
stage=$WORK/stage
cp -R "$HERE/rootfs" "$stage"
# A flavour's rootfs goes over the common one.
[ "$FLAVOUR" = plain ] || cp -R "$HERE/$FLAVOUR/rootfs/." "$stage/"
chown -R 0:0 "$stage"
find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -type f -perm -u+x -exec chmod 0755 {} +
find "$stage" -type f ! -perm -u+x -exec chmod 0644 {} +
tar -C "$stage" -cf - . | tar -C "$ROOT" --no-overwrite-dir -xf -

BB=$ROOT/usr/bin/busybox
ln -sfn ../bin/busybox "$ROOT/usr/sbin/init"
# The boot script's fast tools (see rootfs/usr/lib/solstice-test/boot).
mkdir -p "$ROOT/usr/lib/solstice-test/bin"
for a in "${BOOT_APPLETS[@]}"; do
  ln -sfn ../../../bin/busybox "$ROOT/usr/lib/solstice-test/bin/$a"
done
for a in poweroff reboot halt; do
  [ -e "$ROOT/usr/sbin/$a" ] || ln -s ../bin/busybox "$ROOT/usr/sbin/$a"
done
ln -sfn /proc/self/mounts "$ROOT/etc/mtab"
rm -f "$ROOT"/etc/ssh/ssh_host_* "$ROOT/etc/machine-id" "$ROOT/var/lib/dbus/machine-id"
sed -i 's/^AcceptEnv/#AcceptEnv/' "$ROOT/etc/ssh/sshd_config" # no locale noise
echo solstice-test >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tsolstice-test\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
: >"$ROOT/etc/resolv.conf"
printf 'LABEL=%s\t/\text2\trw\t0\t0\n' "$ROOT_LABEL" >"$ROOT/etc/fstab"
printf 'solstice-test image version %s\nkernel %s\n' "$VERSION" "$KVER" >"$ROOT/etc/solstice-test-release"
if [ "$FLAVOUR" = cloudinit ]; then
  # Our cloud.cfg (from cloudinit/rootfs) is the whole configuration: the
  # package's drop-ins (datasource_list from debconf, 01_debian_cloud.cfg)
  # would widen the search and the module lists again; keep only logging.
  find "$ROOT/etc/cloud/cloud.cfg.d" -type f ! -name 05_logging.cfg ! -name 99_solstice.cfg -delete
  # cloud-init locks the passwords of the users it creates (lock_passwd),
  # and sshd refuses locked accounts unless PAM decides: as on Debian's
  # own cloud images, PAM stays on here.
  sed -i 's/^UsePAM no/UsePAM yes/' "$ROOT/etc/ssh/sshd_config.d/solstice.conf"
fi
rm -rf "$ROOT"/var/cache/apt/* "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/* "$ROOT"/tmp/* \
  "$ROOT"/var/cache/debconf/*-old "$ROOT"/var/lib/dpkg/*-old
chmod 1777 "$ROOT/tmp"
dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f='${Package} ${Version}\n' >"$WORK/manifest"
echo "$KERNEL_META-kernel ${kdeb##*/}" >>"$WORK/manifest"

# ---- initramfs ----------------------------------------------------------------
log "initramfs"
I=$WORK/initramfs
mkdir -p "$I"/{bin,dev,proc,sys,root,etc,lib/modules/"$KVER"}
cp "$BB" "$I/bin/busybox"
for a in $("$I/bin/busybox" --list); do
  [ "$a" = busybox ] || ln -s busybox "$I/bin/$a"
done
install -m 0755 "$HERE/initramfs/init" "$I/init"
mknod -m 600 "$I/dev/console" c 5 1
mknod -m 666 "$I/dev/null" c 1 3
"$BB" depmod -b "$WORK/kernel/x" "$KVER"
norm() { echo "$1" | tr - _; }
for m in "${MODULES[@]}" "${MODULES_LATE[@]}"; do
  line=$(awk -v m="$(norm "$m")" -F: '{ n = $1; sub(/.*\//, "", n); sub(/\.ko.*$/, "", n); gsub(/-/, "_", n) } n == m { print; exit }' "$KMOD/modules.dep")
  [ -n "$line" ] || die "kernel $KVER has no module $m"
  for f in ${line/:/ }; do
    mkdir -p "$I/lib/modules/$KVER/$(dirname "$f")"
    cp -n "$KMOD/$f" "$I/lib/modules/$KVER/$f"
  done
done
cp "$KMOD/modules.builtin" "$KMOD/modules.order" "$I/lib/modules/$KVER/"
"$BB" depmod -b "$I" "$KVER"
printf '%s\n' "${MODULES[@]}" >"$I/etc/modules"
printf '%s\n' "${MODULES_LATE[@]}" >"$I/etc/modules.late"
(cd "$I" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9n >"$ROOT/boot/initrd.img"

cat >"$ROOT/boot/extlinux/extlinux.conf" <<EOF
# solstice-test: BIOS boot from the whole-disk ext2 file system.
SERIAL 0 115200
DEFAULT solstice
PROMPT 0
TIMEOUT 0
LABEL solstice
  LINUX /boot/vmlinuz
  INITRD /boot/initrd.img
  APPEND $KERNEL_CMDLINE
EOF

# ---- disk -----------------------------------------------------------------------
log "ext2 file system ($DISK_SIZE, $(du -sh "$ROOT" | cut -f1) used) and extlinux"
RAW=$WORK/disk.raw
truncate -s "$DISK_SIZE" "$RAW"
# ext2 (no 64bit, no metadata_csum): extlinux 6.04 boots from it; the
# kernel mounts it with its ext4 driver.
mkfs.ext2 -q -F -L "$ROOT_LABEL" -b 4096 -m 0 -I 256 -E root_owner=0:0 -d "$ROOT" "$RAW"
mount -o loop "$RAW" "$WORK/mnt"
extlinux --install "$WORK/mnt/boot/extlinux" >/dev/null 2>&1 || die "extlinux --install failed"
umount "$WORK/mnt"
e2fsck -fn "$RAW" >/dev/null 2>&1 || die "e2fsck found problems in the new file system"

log "qcow2 (compressed)"
qemu-img convert -c -O qcow2 -o compat=1.1 "$RAW" "$WORK/$IMAGE"
qemu-img check -q "$WORK/$IMAGE"

mv -f "$WORK/manifest" "$OUTDIR/$MANIFEST"
mv -f "$WORK/$IMAGE" "$OUTDIR/$IMAGE"
(cd "$OUTDIR" && sha256sum "$IMAGE" >"$IMAGE.sha256.new" && mv -f "$IMAGE.sha256.new" "$IMAGE.sha256")
echo "$RECIPE" >"$OUTDIR/.recipe"
log "done in $((SECONDS - START)) s: $OUTDIR/$IMAGE ($(du -h --apparent-size "$OUTDIR/$IMAGE" | cut -f1), version $VERSION)"
