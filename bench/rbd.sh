#!/bin/sh
# bench/rbd.sh: 4 KiB random reads at QD1 and QD16 of a file relocated into RBD, through the
# mount (relocfs serving it from the image after the cutover) against QEMU's own rbd driver
# and librbd itself (issue #15: reading the image back must be fast enough to run a VM on).
#
# A throw-away one-node Ceph cluster (tests/ceph/lib_ceph.sh: memstore, so the OSD answers from
# memory and the figures are the clients' paths, not a disk's), a BENCH_RBD_MIB (default 128)
# MiB file of random data relocated into it with relocctl migrate --to rbd: and cut over.  Then,
# BENCH_RBD_ROUNDS (default 2) rounds in ABBA order of:
#   fio      --rw=randread --bs=4k, BENCH_RBD_RUNTIME (default 10) s, time based:
#              mount    --ioengine=libaio --direct=1 on the file through the mount
#              librbd   --ioengine=rbd on the image (what QEMU's rbd driver calls), with
#                       rbd_cache=false as QEMU sets it for cache=none
#   qemu-img bench -t none -s 4k, a stride of 1 MiB + 4 KiB over the image (QEMU's own block
#            layer; its bench has no random pattern, and without a client cache a stride reads
#            a new object range each time):
#              mount    the file through the mount (QEMU's file driver, O_DIRECT)
#              rbd      rbd:POOL/IMAGE:conf=... (QEMU's rbd driver)
# relocfs's own librbd client keeps Ceph's default cache (rbd_cache=true, 32 MiB), smaller than
# the image.
#
#   BENCH_RBD_MIB, BENCH_RBD_ROUNDS, BENCH_RBD_RUNTIME as above
#   BENCH_CEPH_CONF=PATH  use a running cluster (with a pool "rbd") instead of starting one
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -eu
. "$(dirname "$0")/lib.sh"

MIB=${BENCH_RBD_MIB:-128}
ROUNDS=${BENCH_RBD_ROUNDS:-2}
RUNTIME=${BENCH_RBD_RUNTIME:-10}
check_prereqs
command -v qemu-img >/dev/null || die "qemu-img is not installed (tests/deps.sh)"
fio --enghelp 2>/dev/null | grep -qw rbd || die "this fio has no rbd engine"

W=$BENCH_DIR/rbd
OUT=$(result_file rbd)
rm -rf "$W"
mkdir -p "$W/src" "$W/mnt"

# what tests/ceph/lib_ceph.sh needs of tests/lib.sh
TEST_DIR=$W
say() { log "$*"; }
fail() { die "$*"; }
skip() { die "$*"; }
at_cleanup() { :; }
. "$BENCH_ROOT/tests/ceph/lib_ceph.sh"

cleanup() {
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
	ceph_start
fi
IMAGE=bench-$$-img

{
	echo "relocfs RBD read benchmark: through the mount after the cutover, against QEMU's rbd driver"
	echo
	machine_facts
	echo "ceph:        $(ceph --version | cut -d' ' -f1-3), one OSD on memstore, pool size 1, auth none"
	echo "qemu:        $(qemu-img --version | head -n 1)"
	echo "image:       $MIB MiB of random data, relocated with relocctl migrate --to rbd: and cut over"
	echo "fio:         --rw=randread --bs=4k --time_based --runtime=$RUNTIME; mount: libaio, direct;"
	echo "             librbd: --ioengine=rbd, rbd_cache=false"
	echo "qemu-img:    bench -t none -s 4k -S 1052672 (20000 reads at QD1, 100000 at QD16)"
	echo "rounds:      $ROUNDS, each over the targets in ABBA order; means below"
	echo
} >"$OUT.tmp"

log "relocating a $MIB MiB file into rbd/$IMAGE"
make_image "$W/src/img" "$MIB" 0
mount_relocfs "$W/src" "$W/mnt"
ctl migrate --to "rbd:rbd/bench-$$-" --ceph-conf "$CEPH_CONF" img >/dev/null
ctl wait --timeout 600 >/dev/null
ctl cutover >"$W/cutover.out"
log "$(cat "$W/cutover.out")"

# fio_run TARGET QD: "IOPS P50_US P99_US"
fio_run() {
	case $1 in
	mount) fio --name=r --filename="$W/mnt/img" --ioengine=libaio --direct=1 \
		--rw=randread --bs=4k --iodepth="$2" --time_based --runtime="$RUNTIME" \
		--output-format=json >"$W/fio.json" ;;
	librbd) CEPH_CONF=$CEPH_CONF CEPH_ARGS="--rbd_cache=false" fio --name=r --ioengine=rbd \
		--clientname=admin --pool=rbd --rbdname="$IMAGE" --rw=randread --bs=4k \
		--iodepth="$2" --time_based --runtime="$RUNTIME" --output-format=json >"$W/fio.json" ;;
	esac
	jq -r '.jobs[0].read | "\(.iops) \(.clat_ns.percentile["50.000000"] / 1000) \(.clat_ns.percentile["99.000000"] / 1000)"' \
		"$W/fio.json"
}

# qemu_run TARGET QD: IOPS
qemu_run() {
	local n=20000 what
	[ "$2" = 1 ] || n=100000
	case $1 in
	mount) what=$W/mnt/img ;;
	rbd) what="rbd:rbd/$IMAGE:conf=$CEPH_CONF" ;;
	esac
	qemu-img bench -f raw -t none -c "$n" -d "$2" -s 4k -S 1052672 "$what" >"$W/bench.out" 2>&1 ||
		die "qemu-img bench $what: $(tail -n 1 "$W/bench.out")"
	sed -n 's/^Run completed in \([0-9.]*\) seconds.*/\1/p' "$W/bench.out" |
		awk -v n="$n" '{ printf "%.0f\n", n / $1 }'
}

mean() { awk '{ s += $1; n++ } END { if (n) printf "%.0f", s / n; else print "n/a" }'; }
meanf() { awk -v f="$1" '{ s += $f; n++ } END { if (n) printf "%.0f", s / n; else print "n/a" }'; }

summary=
for qd in 1 16; do
	: >"$W/fio-mount" && : >"$W/fio-librbd" && : >"$W/q-mount" && : >"$W/q-rbd"
	for r in $(seq "$ROUNDS"); do
		if [ $((r % 2)) = 1 ]; then order="mount librbd librbd mount"; else order="librbd mount mount librbd"; fi
		for t in $order; do
			log "qd$qd round $r: fio $t"
			fio_run "$t" "$qd" >>"$W/fio-$t"
		done
		for t in $(echo "$order" | sed 's/librbd/rbd/g'); do
			log "qd$qd round $r: qemu-img bench $t"
			qemu_run "$t" "$qd" >>"$W/q-$t"
		done
	done
	fm=$(meanf 1 <"$W/fio-mount") fr=$(meanf 1 <"$W/fio-librbd")
	qm=$(mean <"$W/q-mount") qr=$(mean <"$W/q-rbd")
	{
		printf 'randread-4k-qd%-3s fio:      mount %6s IOPS (p50 %5s us, p99 %6s us) | librbd %6s IOPS (p50 %5s us, p99 %6s us) | mount/librbd %s\n' \
			"$qd" "$fm" "$(meanf 2 <"$W/fio-mount")" "$(meanf 3 <"$W/fio-mount")" \
			"$fr" "$(meanf 2 <"$W/fio-librbd")" "$(meanf 3 <"$W/fio-librbd")" "$(ratio "$fm" "$fr")"
		printf '  runs, IOPS: mount %s / librbd %s\n' "$(cut -d' ' -f1 "$W/fio-mount" | xargs printf '%.0f ')" \
			"$(cut -d' ' -f1 "$W/fio-librbd" | xargs printf '%.0f ')"
		printf 'randread-4k-qd%-3s qemu-img: mount %6s IOPS | QEMU rbd driver %6s IOPS | mount/rbd %s\n' \
			"$qd" "$qm" "$qr" "$(ratio "$qm" "$qr")"
		printf '  runs, IOPS: mount %s/ rbd %s\n' "$(tr '\n' ' ' <"$W/q-mount")" "$(tr '\n' ' ' <"$W/q-rbd")"
	} >>"$OUT.tmp"
	summary="$summary
  QD$qd: through the mount $(ratio "$qm" "$qr") of QEMU's rbd driver (qemu-img bench), $(ratio "$fm" "$fr") of librbd (fio)"
done

{
	echo
	echo "loadavg:     $(cut -d' ' -f1-3 /proc/loadavg) (at the end)"
	echo
	echo "targets (none set; how the mount compares with QEMU's own rbd driver):$summary"
} >>"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
