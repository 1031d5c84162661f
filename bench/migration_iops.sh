#!/bin/sh
# bench/migration_iops.sh: guest write IOPS through the mount with and without a migration
# running.  fio 4 KiB random writes, O_DIRECT, libaio QD16, MIGIOPS_RUNTIME s (default 20) on a
# 1 GiB image; the tree also holds a second file (MIGIOPS_OTHER_MIB, default 4096 MiB of data) so
# that the copier stays busy.  The migration (whole tree, default rate = unlimited) starts just
# before fio; status is polled every 0.2 s in the background to find when the copier finished
# (every file ready).  Reported: IOPS over the whole run, and IOPS over the seconds in which the
# copier was still copying (from fio's per-second IOPS log), each against the baseline.
set -eu
. "$(dirname "$0")/lib.sh"

IMG=${MIGIOPS_IMG_MIB:-1024}
OTHER=${MIGIOPS_OTHER_MIB:-4096}
RUNTIME=${MIGIOPS_RUNTIME:-20}
check_prereqs

W=$BENCH_DIR/migiops
OUT=$(result_file migration_iops)
POLLER=
cleanup() {
	if [ -n "$POLLER" ]; then kill "$POLLER" 2>/dev/null || true; fi
	unmount_relocfs
	[ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$W"
mkdir -p "$W/src" "$W/mnt"
avail=$(df -m --output=avail "$BENCH_DIR" | tail -1)
[ "$avail" -gt $(((IMG + OTHER) * 2 + 2048)) ] || die "need $(((IMG + OTHER) * 2 + 2048)) MiB free, have $avail"

log "migration_iops: writing a ${IMG} MiB image and a ${OTHER} MiB second file"
make_image "$W/src/img" "$IMG" 16
make_image "$W/src/other" "$OTHER" 64
mount_relocfs "$W/src" "$W/mnt"

# run_fio TAG -> fio JSON in $W/TAG.json, per-second IOPS log $W/TAG_iops.1.log
run_fio() {
	fio --name="$1" --filename="$W/mnt/img" --size="${IMG}M" --rw=randwrite --bs=4k \
	    --direct=1 --ioengine=libaio --iodepth=16 --time_based --runtime="$RUNTIME" \
	    --randrepeat=0 --norandommap --write_iops_log="$W/$1" --log_avg_msec=1000 \
	    --output-format=json --output="$W/$1.json" >/dev/null || die "fio $1 failed"
}

drop_caches
log "migration_iops: baseline"
run_fio base
base=$(jq '.jobs[0].write.iops' "$W/base.json")

drop_caches
log "migration_iops: during a migration"
(
	while :; do
		rc=0; poll_ready || rc=$?
		echo "$(now) $rc" >>"$W/polls"
		[ $rc = 0 ] && break
		sleep 0.2
	done
) &
POLLER=$!
t0=$(now)
ctl migrate --to "$W/dst" >/dev/null
run_fio mig
t1=$(now)
mig=$(jq '.jobs[0].write.iops' "$W/mig.json")
sleep 0.5
kill "$POLLER" 2>/dev/null || true
wait "$POLLER" 2>/dev/null || true
POLLER=
# seconds from the start of fio (~t0) to the first poll that saw every file ready
t_ready=$(awk -v t0="$t0" '$2 == 0 {printf "%.1f", $1 - t0; found = 1; exit} END {if (!found) print "never"}' "$W/polls")
# IOPS log: msec, iops, dir, bs, offset; average of the whole seconds before t_ready
if [ "$t_ready" = never ]; then
	copying=$(awk -F, '{s += $2; n++} END {if (n) printf "%.0f", s / n}' "$W"/mig_iops.*.log)
	ncopy=$(awk 'END {print NR}' "$W"/mig_iops.*.log)
else
	copying=$(awk -F, -v t="$t_ready" '$1 / 1000 <= t {s += $2; n++} END {if (n) printf "%.0f", s / n; else print ""}' "$W"/mig_iops.*.log)
	ncopy=$(awk -F, -v t="$t_ready" '$1 / 1000 <= t {n++} END {print n + 0}' "$W"/mig_iops.*.log)
fi
state=$(ctl status --json)
delta=$(echo "$state" | jq '[.files[].delta_bytes] | add')
thr=$(echo "$state" | jq '[.files[].throttle_events // 0] | add')
ctl wait >/dev/null
ctl cutover >/dev/null

r=$(ratio "$mig" "$base")
rc=$(ratio "$copying" "$base")
{
	echo "relocfs guest I/O during a migration: 4 KiB random writes, O_DIRECT, libaio QD16"
	echo
	machine_facts
	echo "tree:        img ${IMG} MiB (fio target), other ${OTHER} MiB (keeps the copier busy)"
	echo "fio:         --rw=randwrite --bs=4k --direct=1 --ioengine=libaio --iodepth=16 --runtime=$RUNTIME"
	echo "migration:   whole tree, default rate; every file ready at ${t_ready} s after migrate"
	echo "             (fio ran ${RUNTIME} s); delta bytes at the end $delta, throttle events $thr"
	echo
	printf '%-44s %10.0f\n' "baseline IOPS (no migration)" "$base"
	printf '%-44s %10.0f\n' "IOPS during migration (whole run)" "$mig"
	printf '%-44s %10s\n' "IOPS while the copier was copying ($ncopy s)" "$copying"
	echo "per-second IOPS, baseline:  $(awk -F, '{printf "%d ", $2}' "$W"/base_iops.*.log)"
	echo "per-second IOPS, migrating: $(awk -F, '{printf "%d ", $2}' "$W"/mig_iops.*.log)"
	echo
	echo "targets:"
	printf '  %-46s %7s  %s\n' "IOPS during migration / baseline >= 0.8" "$r" "$(verdict "$r" '>=' 0.8)"
	printf '  %-46s %7s  %s\n' "same, seconds while copying only (info)" "$rc" "-"
} >"$OUT"
cat "$OUT"
