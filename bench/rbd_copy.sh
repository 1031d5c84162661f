#!/bin/sh
# bench/rbd_copy.sh: copying a VM disk file into RBD three ways, on the same image (issue #15):
#   relocfs   relocctl migrate --to rbd: of the file on a relocfs mount (no rate limit), a
#             writer on the file through the mount during the copy; the copy's time is
#             migrate -> relocctl wait returns; then relocctl cutover, whose hold
#             (status --json last_cutover_ms) is the pause
#   convert   qemu-img convert -f raw -O raw -t none FILE rbd:POOL/IMAGE:conf=... (offline:
#             the VM is stopped for the whole copy, so the pause is the copy)
#   mirror    a QEMU (-machine none, no guest) with the file as a file+raw node, QMP
#             blockdev-add of an rbd node and blockdev-mirror sync=full into it, a writer
#             through QEMU's block layer (an NBD export of the raw node, fio --ioengine=nbd)
#             during the copy; the copy's time is the command -> BLOCK_JOB_READY; then stop,
#             block-job-complete, BLOCK_JOB_COMPLETED, cont (what libvirt and Proxmox do for a
#             live "move disk"): stop -> cont is the pause
# The writer: fio 4 KiB randwrite, O_DIRECT, QD BENCH_RBDCOPY_QD (default 4), started 1 s
# before the copy and stopped when it is ready (before the cutover or the stop: the guest is
# paused there); its baseline is the same fio, BENCH_RBDCOPY_BASE s (default 10), through the
# same path just before the copy.
#
# A throw-away one-node Ceph cluster (tests/ceph/lib_ceph.sh: memstore, the OSD holds the data
# in memory; its size is raised to fit the image); each image is removed after its part.
# Caches are dropped before each copy.
#
#   BENCH_RBDCOPY_MIB    image size (default 512), random data
#   BENCH_RBDCOPY_HOLES  a 1 MiB hole every this many MiB (default 8; 0: none)
#   BENCH_RBDCOPY_QD     the writer's queue depth (default 4)
#   BENCH_RBDCOPY_BASE   the writer's baseline run, seconds (default 10)
#   BENCH_CEPH_CONF=PATH use a running cluster (with a pool "rbd") instead of starting one
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -eu
. "$(dirname "$0")/lib.sh"

MIB=${BENCH_RBDCOPY_MIB:-512}
HOLES=${BENCH_RBDCOPY_HOLES:-8}
QD=${BENCH_RBDCOPY_QD:-4}
BASE=${BENCH_RBDCOPY_BASE:-10}
check_prereqs
command -v qemu-img >/dev/null || die "qemu-img is not installed (tests/deps.sh)"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is not installed"
command -v python3 >/dev/null || die "python3 is not installed"
fio --enghelp 2>/dev/null | grep -qw nbd || die "this fio has no nbd engine"

W=$BENCH_DIR/rbd_copy
OUT=$(result_file rbd_copy)
QMPPY=$BENCH_ROOT/bench/rbd_copy_qmp.py
rm -rf "$W"
mkdir -p "$W/src" "$W/mnt"

# what tests/ceph/lib_ceph.sh needs of tests/lib.sh
TEST_DIR=$W
say() { log "$*"; }
fail() { die "$*"; }
skip() { die "$*"; }
at_cleanup() { :; }
. "$BENCH_ROOT/tests/ceph/lib_ceph.sh"

QEMU_PID=
FIO_PID=
cleanup() {
	[ -z "$FIO_PID" ] || kill -TERM "$FIO_PID" 2>/dev/null || true
	[ -z "$QEMU_PID" ] || kill -TERM "$QEMU_PID" 2>/dev/null || true
	unmount_relocfs
	ceph_stop
	[ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${BENCH_CEPH_CONF:-}" ]; then
	CEPH_CONF=$BENCH_CEPH_CONF
else
	log "starting a one-node Ceph cluster"
	# memstore's 256 MiB would not hold the image
	CEPH_ARGS="--memstore_device_bytes=$(((MIB + 512) * 1048576))" ceph_start
fi
P=bench-$$

# fio_writer TAG RUNTIME|bg [fio target args...]: fio 4 KiB randwrite; "bg" runs it until it
# gets SIGTERM (FIO_PID); the JSON goes to $W/TAG.json
fio_writer() {
	local tag=$1 rt=$2
	shift 2
	set -- --name=w --rw=randwrite --bs=4k --iodepth="$QD" --size="${MIB}M" \
		--output-format=json --output="$W/$tag.json" "$@"
	if [ "$rt" = bg ]; then
		fio --time_based --runtime=3600 "$@" >/dev/null 2>"$W/$tag.err" &
		FIO_PID=$!
	else
		fio --time_based --runtime="$rt" "$@" >/dev/null 2>"$W/$tag.err" || die "fio $tag: $(cat "$W/$tag.err")"
	fi
}
fio_stop() {
	kill -TERM "$FIO_PID" 2>/dev/null || true
	wait "$FIO_PID" || true
	FIO_PID=
}
# (a fio ended by SIGTERM says so in its output file, ahead of the JSON)
iops() { sed -n '/^{/,$p' "$W/$1.json" | jq -r '.jobs[0].write.iops | floor'; }
mibs() { awk -v m="$MIB" -v s="$1" 'BEGIN { printf "%.1f", m / s }'; }

{
	echo "relocfs RBD copy benchmark: relocfs against qemu-img convert and QEMU's blockdev-mirror"
	echo
	machine_facts
	echo "ceph:        $(ceph --version | cut -d' ' -f1-3), one OSD on memstore, pool size 1, auth none"
	echo "qemu:        $(qemu-img --version | head -n 1)"
	echo "image:       $MIB MiB raw, random data, a 1 MiB hole every $HOLES MiB; MiB/s below are"
	echo "             of the whole size (holes included) over the copy's time"
	echo "writer:      fio --rw=randwrite --bs=4k --iodepth=$QD, O_DIRECT; relocfs: libaio on the"
	echo "             file through the mount; mirror: --ioengine=nbd on an NBD export of the"
	echo "             mirrored node in the same QEMU (its raw node: file driver, cache.direct,"
	echo "             aio=native); baseline: ${BASE} s through the same path just before the copy"
	echo
} >"$OUT.tmp"

# ---- (b) qemu-img convert, offline
log "convert: qemu-img convert of a $MIB MiB file into rbd/$P-convert"
make_image "$W/src/img" "$MIB" "$HOLES"
drop_caches
t0=$(now)
qemu-img convert -f raw -O raw -t none "$W/src/img" "rbd:rbd/$P-convert:conf=$CEPH_CONF" ||
	die "qemu-img convert failed"
t_conv=$(elapsed "$t0" "$(now)")
rbd_ rm "$P-convert" >/dev/null 2>&1 || true
la_conv=$(cut -d' ' -f1 /proc/loadavg)

# ---- (c) QEMU blockdev-mirror, live
log "mirror: QEMU blockdev-mirror of a $MIB MiB file into rbd/$P-mirror"
make_image "$W/src/img" "$MIB" "$HOLES"
rbd_ create --size "${MIB}M" "$P-mirror"
qemu-system-x86_64 -machine none -nodefaults -display none \
	-qmp "unix:$W/qmp.sock,server=on,wait=off" \
	-blockdev "driver=file,node-name=f0,filename=$W/src/img,cache.direct=on,aio=native" \
	-blockdev "driver=raw,node-name=disk0,file=f0" >"$W/qemu.log" 2>&1 &
QEMU_PID=$!
i=0
until [ -S "$W/qmp.sock" ]; do
	i=$((i + 1)); [ $i -lt 200 ] || die "QEMU did not start: $(cat "$W/qemu.log")"
	sleep 0.05
done
qmp() { python3 "$QMPPY" "$W/qmp.sock" "$@"; }
qmp export "$W/nbd.sock" disk0
NBD="--ioengine=nbd --uri=nbd+unix:///disk0?socket=$W/nbd.sock"
log "mirror: writer baseline"
fio_writer mirror-base "$BASE" $NBD
drop_caches
fio_writer mirror-copy bg $NBD
sleep 1
t_mir=$(qmp mirror disk0 "$CEPH_CONF" rbd "$P-mirror")
fio_stop
p_mir=$(qmp complete)
qmp quit || true
wait "$QEMU_PID" || true
QEMU_PID=
rbd_ rm "$P-mirror" >/dev/null 2>&1 || true
la_mir=$(cut -d' ' -f1 /proc/loadavg)

# ---- (a) relocfs
log "relocfs: relocctl migrate --to rbd: of a $MIB MiB file"
make_image "$W/src/img" "$MIB" "$HOLES"
mount_relocfs "$W/src" "$W/mnt"
log "relocfs: writer baseline"
fio_writer reloc-base "$BASE" --filename="$W/mnt/img" --ioengine=libaio --direct=1
drop_caches
fio_writer reloc-copy bg --filename="$W/mnt/img" --ioengine=libaio --direct=1
sleep 1
t0=$(now)
ctl migrate --to "rbd:rbd/$P-" --ceph-conf "$CEPH_CONF" img >/dev/null
ctl wait --timeout 900 >/dev/null
t_rel=$(elapsed "$t0" "$(now)")
fio_stop
ctl cutover >"$W/cutover.out"
p_rel=$(ctl status --json | jq -r '.last_cutover_ms')
log "$(cat "$W/cutover.out")"
unmount_relocfs
rbd_ rm "$P-img" >/dev/null 2>&1 || true
la_rel=$(cut -d' ' -f1 /proc/loadavg)

rb=$(iops reloc-base) rc=$(iops reloc-copy) mb=$(iops mirror-base) mc=$(iops mirror-copy)
{
	printf 'copy-%s MiB      relocfs  %6s s %7s MiB/s | writer %6s IOPS during, %6s alone (%s) | pause %8.1f ms (cutover hold)\n' \
		"$MIB" "$t_rel" "$(mibs "$t_rel")" "$rc" "$rb" "$(ratio "$rc" "$rb")" "$p_rel"
	printf 'copy-%s MiB      mirror   %6s s %7s MiB/s | writer %6s IOPS during, %6s alone (%s) | pause %8.1f ms (stop -> cont)\n' \
		"$MIB" "$t_mir" "$(mibs "$t_mir")" "$mc" "$mb" "$(ratio "$mc" "$mb")" "$p_mir"
	printf 'copy-%s MiB      convert  %6s s %7s MiB/s | no writer (offline)                       | pause %8.0f ms (the copy)\n' \
		"$MIB" "$t_conv" "$(mibs "$t_conv")" "$(awk -v s="$t_conv" 'BEGIN { print s * 1000 }')"
	echo "loadavg (1 min) after each: convert $la_conv, mirror $la_mir, relocfs $la_rel"
	echo
	echo "loadavg:     $(cut -d' ' -f1-3 /proc/loadavg) (at the end)"
	echo
	echo "targets (none set; how relocfs compares with QEMU's own ways into RBD):"
	echo "  copy: relocfs $(ratio "$(mibs "$t_rel")" "$(mibs "$t_mir")") of blockdev-mirror's MiB/s, $(ratio "$(mibs "$t_rel")" "$(mibs "$t_conv")") of qemu-img convert's"
	echo "  writer during the copy: relocfs $(ratio "$rc" "$rb") of its baseline, mirror $(ratio "$mc" "$mb")"
	echo "  pause: relocfs ${p_rel} ms, mirror ${p_mir} ms, convert ${t_conv} s"
} >>"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
