#!/bin/bash
# demo_vm.sh: make demo with a real guest.  demo.sh runs it first; it relocates
# the disks of a running QEMU guest (TCG, Debian's kernel, a busybox initramfs
# from tests/vm/guest.sh) live to new storage, cuts over with the qmp hook and
# shows what it measured.
#
#   exit 0   done, everything checked
#   exit 77  no real guest here (no QEMU, no kernel, the guest does not boot):
#            it has printed one line saying why, and demo.sh runs the
#            built-in example instead
#   exit 1   the demo failed (it says where)
#
# Everything lives under $DEMO_DIR (default /var/tmp/relocfs-demo), which is
# removed first:
#   vms/          the VM's directory on the old storage, relocfs mounted over it:
#                 vm1-disk0.raw (raw, cache=none), vm1-disk1.qcow2 (qcow2,
#                 cache=writeback), vm1.conf
#   new-storage/  where they move to
#   vm1.qmp       the guest's QMP socket
#   guest/        console log, initramfs, the control disk (outside the mount)
#
# The guest writes generations 1, 2, 3, ... to both disks (as
# tests/vm/e2e_qmp.sh's guest does: region A, blocks 0-63, and one window of
# 16 blocks of region B per generation, each 4 KiB block naming its disk,
# index and generation; O_DIRECT and fsync) until the word STOP appears on
# its control disk; then it reads everything back, prints "VERIFY PASS gen=G"
# and powers off.  The host builds the images the guest should have left and
# compares them with the new storage byte for byte.
#
# DEMO_VM_MB (default 128) sizes each disk; DEMO_RATE (default 16M bytes/s)
# limits the copy so that the guest keeps writing while it runs.
set -uo pipefail
export LC_ALL=C

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case ${BUILD:-build} in /*) B=$BUILD ;; *) B=$TOP/${BUILD:-build} ;; esac
DEMO_DIR=${DEMO_DIR:-/var/tmp/relocfs-demo}
export RELOCFS_RUNDIR="$DEMO_DIR/run"
VMS=$DEMO_DIR/vms
NEW=$DEMO_DIR/new-storage
G_DIR=$DEMO_DIR/guest
QMP=$DEMO_DIR/vm1.qmp
CONSOLE=$G_DIR/console.log
SIZE_MB=${DEMO_VM_MB:-128}
NBLK=$((SIZE_MB * 256))
RATE=${DEMO_RATE:-16M}
RELOCFS_PID=

. "$TOP/tests/vm/guest.sh"

say() { printf '\n== %s\n' "$*"; }
ind() { sed 's/^/   /'; }
elapsed() { awk -v a="$1" -v b="${2:-$(date +%s.%N)}" 'BEGIN { printf "%.1f", b - a }'; }
# no real guest here: one line, and demo.sh runs the built-in example
no_guest() {
	echo "demo: no real guest here ($*); running the built-in example instead"
	exit 77
}
die() {
	echo "demo: FAILED: $*" >&2
	if [ -s "$CONSOLE" ]; then
		echo "demo: the guest's console, last lines:" >&2
		grep -aE 'GUEST:|^(GEN|VERIFY)|I/O error|Kernel panic' "$CONSOLE" | tail -n 8 | sed 's/^/   | /' >&2
	fi
	[ -s "$DEMO_DIR/relocfs.log" ] && { echo "demo: relocfs's log, last lines:" >&2; tail -n 8 "$DEMO_DIR/relocfs.log" | sed 's/^/   | /' >&2; }
	exit 1
}
mounted() { grep -q " $VMS .* fuse.relocfs " /proc/self/mountinfo 2>/dev/null; }
cleanup() {
	guest_kill
	if mounted; then
		fusermount3 -u "$VMS" 2>/dev/null || fusermount3 -uz "$VMS" 2>/dev/null || true
	fi
	if [ -n "$RELOCFS_PID" ]; then
		local i=0
		while kill -0 "$RELOCFS_PID" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
		kill "$RELOCFS_PID" 2>/dev/null
		wait "$RELOCFS_PID" 2>/dev/null
		RELOCFS_PID=
	fi
	return 0
}
trap 'rc=$?; cleanup; exit $rc' EXIT
trap 'exit 130' INT TERM

last_gen() { sed -n 's/^GEN \([0-9][0-9]*\) flushed.*/\1/p' "$CONSOLE" | tail -n 1; }
wait_gen() {	# wait_gen N SECS
	local limit=$(($2 * 10)) i=0 g
	while :; do
		g=$(last_gen)
		[ -n "$g" ] && [ "$g" -ge "$1" ] && return 0
		kill -0 "$GUEST_PID" 2>/dev/null || return 1
		i=$((i + 1))
		[ $i -lt $limit ] || return 1
		sleep 0.1
	done
}
json() { "$B/relocctl" -m "$VMS" status --json | jq -r "$1"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }


[ "$(id -u)" = 0 ] || { echo "demo: run as root (it mounts a FUSE filesystem)" >&2; exit 1; }
[ -x "$B/relocfs" ] && [ -x "$B/relocctl" ] || { echo "demo: build first (make)" >&2; exit 1; }
for c in qemu-img jq fusermount3; do
	command -v $c >/dev/null 2>&1 || no_guest "'$c' is not installed"
done
T0=$(date +%s.%N)

cleanup
rm -rf "$DEMO_DIR"
mkdir -p "$VMS" "$NEW" "$G_DIR" "$RELOCFS_RUNDIR"

# ---------------------------------------------------------------------------
[ -n "$(guest_cached_kernels)" ] || echo "demo: fetching Debian's kernel package for the guest into $GUEST_CACHE (once)"
rc=0
guest_prepare 2>"$G_DIR/prepare.log" || rc=$?
[ $rc = 0 ] || no_guest "$(tail -n 1 "$G_DIR/prepare.log" | sed 's/^guest.sh: //')"
say "a real guest: QEMU (TCG), Debian's kernel, a busybox initramfs (tests/vm/guest.sh)"
echo "   kernel: $(cat "$(dirname "$GUEST_KERNEL")/package"), $(qemu-system-x86_64 --version | head -n 1)"

guest_gens_initrd "$G_DIR" "$NBLK" "vda vdb" vdb vdc || die "cannot build the initramfs"

# ---------------------------------------------------------------------------
say "the VM's directory on the old storage ($VMS), relocfs mounted over it"
pattern_blocks hst 0 0 "$NBLK" >"$VMS/vm1-disk0.raw"
pattern_blocks hst 0 0 $((NBLK / 2)) >"$G_DIR/fill.raw"
truncate -s "${SIZE_MB}M" "$G_DIR/fill.raw"
qemu-img convert -q -f raw -O qcow2 "$G_DIR/fill.raw" "$VMS/vm1-disk1.qcow2" || die "qemu-img convert"
rm -f "$G_DIR/fill.raw"
truncate -s 1M "$G_DIR/ctl.img"
DRIVES=("file=$VMS/vm1-disk0.raw,if=virtio,format=raw,cache=none,aio=threads"
	"file=$VMS/vm1-disk1.qcow2,if=virtio,format=qcow2,cache=writeback"
	"file=$G_DIR/ctl.img,if=virtio,format=raw,cache=none,aio=threads,readonly=on")
{
	echo "# vm1: qemu-system-x86_64 -M q35 -m 256 -accel tcg -qmp unix:$QMP,server=on,wait=off"
	for d in "${DRIVES[@]}"; do echo "#   -drive $d"; done
} >"$VMS/vm1.conf"
"$B/relocfs" -f "$VMS" 2>"$DEMO_DIR/relocfs.log" &
RELOCFS_PID=$!
i=0
until mounted; do
	kill -0 "$RELOCFS_PID" 2>/dev/null || die "relocfs did not start: $(tail -n 1 "$DEMO_DIR/relocfs.log")"
	i=$((i + 1))
	[ $i -lt 100 ] || die "relocfs did not mount within 10 s"
	sleep 0.1
done
SZ_RAW=$(stat -c %s "$VMS/vm1-disk0.raw")
SZ_QCOW=$(stat -c %s "$VMS/vm1-disk1.qcow2")
SZ_CONF=$(stat -c %s "$VMS/vm1.conf")
printf '   %-16s %s raw, fully written, -drive cache=none (O_DIRECT)\n' vm1-disk0.raw "$(mib "$SZ_RAW")"
printf '   %-16s %s qcow2 (%s virtual, lower half written), -drive cache=writeback\n' \
	vm1-disk1.qcow2 "$(mib "$SZ_QCOW")" "$SIZE_MB MiB"
printf '   %-16s %s bytes, a config file\n' vm1.conf "$SZ_CONF"
findmnt -n -o TARGET,FSTYPE "$VMS" | ind

# ---------------------------------------------------------------------------
say "boot the guest from the mount; it writes generations to both disks, O_DIRECT + fsync"
guest_start "$CONSOLE" "$QMP" "${DRIVES[@]}"
T_BOOT=$GUEST_START_S
guest_wait_line "$CONSOLE" 'GUEST: ready' 120 || no_guest "the guest did not boot within 120 s"
echo "   guest up after $(elapsed "$T_BOOT") s: $(grep -ao 'GUEST: ready .*' "$CONSOLE" | sed 's/^GUEST: ready //' | tr -d '\r')"
wait_gen 3 90 || die "the guest did not flush 3 generations"
echo "   generation $(last_gen) flushed to both disks"

# ---------------------------------------------------------------------------
say "relocctl migrate --to $NEW --rate $RATE   (the guest goes on writing)"
GEN_MIG=$(last_gen)
T_MIG=$(date +%s.%N)
"$B/relocctl" -m "$VMS" migrate --to "$NEW" --rate "$RATE" 2>&1 | ind
[ "${PIPESTATUS[0]}" = 0 ] || die "relocctl migrate"

say "relocctl wait: until both disks and the config are ready for cutover"
"$B/relocctl" -m "$VMS" wait --timeout 300 | ind
[ "${PIPESTATUS[0]}" = 0 ] || die "relocctl wait"
T_READY=$(date +%s.%N)
GEN_READY=$(last_gen)
echo "   copy took $(elapsed "$T_MIG" "$T_READY") s; the guest flushed generations $((GEN_MIG + 1))-$GEN_READY meanwhile"
grep -aq '^VERIFY FAIL' "$CONSOLE" && die "the guest failed during the copy"

say "relocctl verify: the new storage against the live view (XXH3), the guest still writing"
"$B/relocctl" -m "$VMS" verify 2>&1 | ind
[ "${PIPESTATUS[0]}" = 0 ] || die "relocctl verify"

say "relocctl cutover --hook qmp:$QMP"
GEN_CUT=$(last_gen)
"$B/relocctl" -m "$VMS" cutover --hook "qmp:$QMP" --timeout 60 2>&1 | fold -s -w 96 | sed '2,$s/^/  /' | ind
[ "${PIPESTATUS[0]}" = 0 ] || die "relocctl cutover"
HOLD_MS=$(json .last_cutover_ms)
HOOKS=$(json .last_cutover_hooks)
SOURCE_NOW=$(json .source)
VM_MS=$(printf '%s\n' "$HOOKS" | sed -n 's/^qmp:.*=\([0-9.]*\)ms$/\1/p')

say "the guest runs on, on the new storage"
wait_gen $((GEN_CUT + 3)) 60 || die "no generation after $GEN_CUT within 60 s of the cutover"
echo "   generation $(last_gen) flushed; the mount serves $SOURCE_NOW"

say "STOP: the guest reads back everything it wrote and powers off"
printf 'STOP' | dd of="$G_DIR/ctl.img" conv=notrunc,fsync status=none
guest_wait 120 || die "the guest still runs 120 s after STOP"
VERIFY=$(grep -a '^VERIFY' "$CONSOLE" | tail -n 1 | tr -d '\r')
echo "   guest: $VERIFY"
case $VERIFY in "VERIFY PASS"*) ;; *) die "the guest's own check failed" ;; esac
[ "$GUEST_RC" = 0 ] || die "qemu exited with status $GUEST_RC"
G=$(printf '%s\n' "$VERIFY" | sed -n 's/^VERIFY PASS gen=\([0-9]*\).*/\1/p')
[ "$G" = "$(last_gen)" ] || die "the guest verified generation $G, but flushed $(last_gen)"

# ---------------------------------------------------------------------------
say "the new storage against what the guest wrote, byte for byte"
expected_image vda "$G" "$NBLK" "$G_DIR/expect_vda.raw"
expected_image vdb "$G" $((NBLK / 2)) "$G_DIR/expect_vdb.raw"
cmp "$G_DIR/expect_vda.raw" "$NEW/vm1-disk0.raw" || die "vm1-disk0.raw differs from generation $G"
echo "   vm1-disk0.raw    = generation $G (cmp, $(mib "$(stat -c %s "$NEW/vm1-disk0.raw")"))"
qemu-img check -q "$NEW/vm1-disk1.qcow2" || die "vm1-disk1.qcow2 does not check"
qemu-img compare -q -f raw -F qcow2 "$G_DIR/expect_vdb.raw" "$NEW/vm1-disk1.qcow2" ||
	die "vm1-disk1.qcow2 differs from generation $G: $(qemu-img compare -f raw -F qcow2 "$G_DIR/expect_vdb.raw" "$NEW/vm1-disk1.qcow2" 2>&1 | head -n 1)"
echo "   vm1-disk1.qcow2  = generation $G (qemu-img compare; qemu-img check: no errors)"
cmp "$VMS/vm1.conf" "$NEW/vm1.conf" >/dev/null || die "vm1.conf differs"
echo "   vm1.conf         = the original ($SZ_CONF bytes)"
for f in vm1-disk0.raw vm1-disk1.qcow2; do
	cmp -s "$VMS/$f" "$NEW/$f" || die "the mount's $f differs from the new storage's"
done
echo "   the mount's view = the new storage"

fusermount3 -u "$VMS" || die "cannot unmount $VMS"
wait "$RELOCFS_PID" 2>/dev/null
RELOCFS_PID=

# ---------------------------------------------------------------------------
say "what happened"
cat <<EOF
   moved           vm1-disk0.raw $(mib "$SZ_RAW") + vm1-disk1.qcow2 $(mib "$SZ_QCOW") + vm1.conf
                   from $VMS to $NEW, the guest running
   copy            $(elapsed "$T_MIG" "$T_READY") s at --rate $RATE (DEMO_RATE), guest generations $((GEN_MIG + 1))-$GEN_READY written meanwhile
   I/O held        $(printf '%.1f' "$HOLD_MS") ms by relocfs at cutover (last_cutover_ms)
   VM paused       ${VM_MS:-?} ms, QMP stop to cont (last_cutover_hooks: $HOOKS)
   guest           $VERIFY
   host check      the new storage holds generation $G on both disks, byte for byte
   took            $(elapsed "$T0") s, $G generations in all (cutover after $GEN_CUT)
EOF
echo
echo "demo: relocated a running guest's disks live; the VM was paused ${VM_MS:-?} ms, relocfs held I/O $(printf '%.1f' "$HOLD_MS") ms"
