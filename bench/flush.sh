#!/bin/sh
# bench/flush.sh: what a guest flush costs while its file migrates (issue 16).  fio inside the
# mount, 4 KiB O_DIRECT random writes with an fdatasync after each (--fdatasync=1), on a
# FLUSH_IMG_MIB (default 512) MiB image, at QD1 (one job) and QD8 (FLUSH_JOBS=8 psync jobs, each
# flushing its own writes), FLUSH_RUNTIME s (default 10) per fio run, in one sequence:
#
#   idle:       QD1, QD8                     (passthrough, before any migration)
#   then FLUSH_ROUNDS (default 2) times:
#   migrating:  QD1, QD8, QD8, QD1           (`migrate --to DEST img`, after `wait`: copy done,
#                                             the merger running; ABBA within the phase)
#   idle again: QD8, QD1                     (after `abort`: passthrough again)
#
# A round's ratio is its migrating mean over the mean of the idle runs just before and just
# after it, so that a drift of the machine over the run (other tenants) cancels to first order.
#
# Source, delta store and destination sit on one filesystem: a fresh FLUSH_FS (ext4, or xfs)
# made on a loop device (direct I/O) over a zero-filled file in BENCH_DIR, so that the result
# does not depend on how the host's filesystem is set up and the counters below see only this
# benchmark; FLUSH_FS=none runs in BENCH_DIR itself (device counters then include the rest of the
# host).
#
# Reported per run: IOPS; per guest flush: device cache flushes (/sys/block/DEV/stat), ext4 jbd2
# commits (/proc/fs/jbd2/DEV-8/info) or xfs log writes, KiB written to the device; fio's p99.9
# latency of the write and of the fdatasync.  An idle flush costs one device flush and no
# journal commit; the counters say how far a migrating one is from that, and where its time
# goes when a target is missed.
set -eu
. "$(dirname "$0")/lib.sh"

IMG=${FLUSH_IMG_MIB:-512}
RUNTIME=${FLUSH_RUNTIME:-10}
JOBS=${FLUSH_JOBS:-8}
ROUNDS=${FLUSH_ROUNDS:-2}
FSTYPE=${FLUSH_FS:-ext4}
check_prereqs

W=$BENCH_DIR/flush
OUT=$(result_file flush)
LOOPDEV=
cleanup() {
	unmount_relocfs
	if [ -n "$LOOPDEV" ]; then
		umount "$W/fs" 2>/dev/null || true
		losetup -d "$LOOPDEV" 2>/dev/null || true
	fi
	[ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$W"
mkdir -p "$W/fs"

if [ "$FSTYPE" = none ]; then
	FSDIR=$W/fs
	DEV=$(basename "$(df --output=source "$FSDIR" | tail -1)")
else
	command -v losetup >/dev/null || die "losetup is missing (util-linux), or set FLUSH_FS=none"
	loop_mib=$((IMG * 4 + 1024))
	avail=$(df -m --output=avail "$BENCH_DIR" | tail -1)
	[ "$avail" -gt $((loop_mib + 1024)) ] || die "need $((loop_mib + 1024)) MiB free in $BENCH_DIR, have $avail"
	log "flush: ${loop_mib} MiB $FSTYPE on a loop device (zero-filled backing file)"
	dd if=/dev/zero of="$W/backing" bs=1M count=$loop_mib conv=fsync status=none
	LOOPDEV=$(losetup --direct-io=on -f --show "$W/backing")
	case $FSTYPE in
	ext4) mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$LOOPDEV" ;;
	xfs) mkfs.xfs -q -f "$LOOPDEV" ;;
	*) die "FLUSH_FS=$FSTYPE: ext4, xfs or none" ;;
	esac
	mount "$LOOPDEV" "$W/fs"
	FSDIR=$W/fs
	DEV=$(basename "$LOOPDEV")
fi
mkdir -p "$FSDIR/src" "$FSDIR/mnt"
log "flush: writing a ${IMG} MiB image"
make_image "$FSDIR/src/img" "$IMG" 0
drop_caches
mount_relocfs "$FSDIR/src" "$FSDIR/mnt"

# counters: device flushes, device write sectors, journal commits (ext4) / log writes (xfs)
counters() {
	c_fl=$(awk '{print $16 + 0}' "/sys/block/$DEV/stat" 2>/dev/null || echo 0)
	c_ws=$(awk '{print $7 + 0}' "/sys/block/$DEV/stat" 2>/dev/null || echo 0)
	if [ -r "/proc/fs/jbd2/$DEV-8/info" ]; then
		c_jc=$(awk 'NR == 1 {print $1}' "/proc/fs/jbd2/$DEV-8/info")
	elif [ -r "/sys/fs/xfs/$DEV/stats/stats" ]; then
		c_jc=$(awk '$1 == "log" {print $2}' "/sys/fs/xfs/$DEV/stats/stats")
	else
		c_jc=0
	fi
	echo "$c_fl $c_ws $c_jc"
}

# run_fio TAG QD: appends "TAG QD iops flushes/fl commits/fl KiB/fl write_p999_ms sync_p999_ms
# load" to $W/rows
run_fio() {
	pre=$(counters)
	fio --name="$1" --filename="$FSDIR/mnt/img" --size="${IMG}M" --rw=randwrite --bs=4k \
	    --direct=1 --ioengine=psync --iodepth=1 --numjobs="$2" --group_reporting --fdatasync=1 \
	    --time_based --runtime="$RUNTIME" --randrepeat=0 --norandommap \
	    --output-format=json --output="$W/$1.json" >/dev/null || die "fio $1 failed"
	post=$(counters)
	jq -r --arg tag "$1" --arg qd "$2" --arg pre "$pre" --arg post "$post" \
	      --arg load "$(cut -d' ' -f1 /proc/loadavg)" '
		.jobs[0] as $j | ($pre | split(" ") | map(tonumber)) as $a |
		($post | split(" ") | map(tonumber)) as $b | ($j.write.total_ios) as $n |
		def per(i): if $n > 0 then (($b[i] - $a[i]) / $n * 100 | round / 100) else 0 end;
		[$tag, $qd, ($j.write.iops | round), per(0), per(2),
		 (if $n > 0 then (($b[1] - $a[1]) * 512 / 1024 / $n * 10 | round / 10) else 0 end),
		 (($j.write.clat_ns.percentile["99.900000"] // 0) / 1e6 * 100 | round / 100),
		 (($j.sync.lat_ns.percentile["99.900000"] // 0) / 1e6 * 100 | round / 100), $load] | @tsv' \
		"$W/$1.json" >>"$W/rows"
	log "flush: $1 QD$2: $(tail -1 "$W/rows" | cut -f3) IOPS"
}

: >"$W/rows"
: >"$W/rounds"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
run_fio idle0-qd1 1
run_fio idle0-qd8 "$JOBS"
r=1
while [ $r -le "$ROUNDS" ]; do
	log "flush: round $r: migrating img, waiting for ready"
	rm -rf "$FSDIR/dst"
	ctl migrate --to "$FSDIR/dst" img >/dev/null
	t0=$(now)
	until poll_ready; do
		[ $? = 2 ] && die "migration failed: $STATUS"
		sleep 0.2
	done
	t_ready=$(elapsed "$t0" "$(now)")
	run_fio "mig$r-qd1-a" 1
	run_fio "mig$r-qd8-a" "$JOBS"
	run_fio "mig$r-qd8-b" "$JOBS"
	run_fio "mig$r-qd1-b" 1
	st=$(ctl status --json)
	delta=$(echo "$st" | jq '[.files[].delta_bytes] | add')
	ctl abort >/dev/null
	run_fio "idle$r-qd8" "$JOBS"
	run_fio "idle$r-qd1" 1
	echo "$r $t_ready $delta" >>"$W/rounds"
	r=$((r + 1))
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

# col TAG N: field N of the row TAG
col() { awk -F'\t' -v t="$1" -v n="$2" '$1 == t {print $n}' "$W/rows"; }
mean2() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (a + b) / 2}'; }
# per round and QD: ratio of IOPS, and of p99.9 latencies (migrating over idle)
: >"$W/ratios"
r=1
while [ $r -le "$ROUNDS" ]; do
	p=$((r - 1))
	for q in 1 8; do
		idle=$(mean2 "$(col "idle$p-qd$q" 3)" "$(col "idle$r-qd$q" 3)")
		mig=$(mean2 "$(col "mig$r-qd$q-a" 3)" "$(col "mig$r-qd$q-b" 3)")
		iw=$(mean2 "$(col "idle$p-qd$q" 7)" "$(col "idle$r-qd$q" 7)")
		mw=$(mean2 "$(col "mig$r-qd$q-a" 7)" "$(col "mig$r-qd$q-b" 7)")
		is=$(mean2 "$(col "idle$p-qd$q" 8)" "$(col "idle$r-qd$q" 8)")
		ms=$(mean2 "$(col "mig$r-qd$q-a" 8)" "$(col "mig$r-qd$q-b" 8)")
		echo "$r $q $idle $mig $(ratio "$mig" "$idle") $iw $mw $(ratio "$mw" "$iw") $is $ms $(ratio "$ms" "$is")" >>"$W/ratios"
	done
	r=$((r + 1))
done
# over all rounds: IOPS ratio = sum of migrating means / sum of idle means; latency ratios the
# worst round's
agg() { awk -v q="$1" '$2 == q {i += $3; m += $4} END {printf "%.3f", m / i}' "$W/ratios"; }
worst() { awk -v q="$1" -v c="$2" '$2 == q && $c > w {w = $c} END {printf "%.3f", w}' "$W/ratios"; }
r1=$(agg 1)
r8=$(agg 8)
lw1=$(worst 1 8)
lw8=$(worst 8 8)
ls1=$(worst 1 11)
ls8=$(worst 8 11)
fl1=$(awk -F'\t' '$1 ~ /^mig.*-qd1-/ {s += $4; n++} END {printf "%.2f", n ? s / n : 0}' "$W/rows")
fl8=$(awk -F'\t' '$1 ~ /^mig.*-qd8-/ {s += $4; n++} END {printf "%.2f", n ? s / n : 0}' "$W/rows")
jc1=$(awk -F'\t' '$1 ~ /^mig.*-qd1-/ {s += $5; n++} END {printf "%.2f", n ? s / n : 0}' "$W/rows")
{
	echo "relocfs guest flush cost: 4 KiB randwrite O_DIRECT + fdatasync each, idle / migrating / idle after abort"
	echo
	machine_facts
	echo "filesystem:  $FSTYPE on $DEV (source, delta store and destination)"
	echo "fio:         --rw=randwrite --bs=4k --direct=1 --ioengine=psync --fdatasync=1 --runtime=$RUNTIME;"
	echo "             QD1 = 1 job, QD$JOBS = $JOBS jobs; image ${IMG} MiB; $ROUNDS round(s)"
	echo "load:        $load0 at the start, $load1 at the end (1, 5, 15 min)"
	echo "others:      $(ps -eo comm= | grep -E '^(fio|relocfs|qemu|cc1|make|stress)' | sort | uniq -c | awk '{printf "%s %s, ", $1, $2}' | sed 's/, $//') running at the end"
	awk '{printf "round %s:     ready %s s after migrate; delta %s bytes at the abort\n", $1, $2, $3}' "$W/rounds"
	echo
	printf '%-12s %3s %7s %9s %9s %8s %10s %10s %5s\n' run QD IOPS flush/fl commit/fl KiB/fl write_p999 sync_p999 load
	awk -F'\t' '{printf "%-12s %3s %7s %9s %9s %8s %7s ms %7s ms %5s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9}' "$W/rows"
	echo "(flush/fl: device cache flushes per guest flush; commit/fl: jbd2 commits (ext4) or log"
	echo " writes (xfs) per guest flush; KiB/fl: KiB written to the device per guest flush)"
	echo
	echo "per round (idle = mean of the idle runs before and after it):"
	printf '%-6s %3s %9s %9s %6s %11s %11s %6s %11s %11s %6s\n' round QD idle_iops mig_iops ratio \
		idle_w999 mig_w999 ratio idle_s999 mig_s999 ratio
	awk '{printf "%-6s %3s %9s %9s %6s %8s ms %8s ms %6s %8s ms %8s ms %6s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11}' "$W/ratios"
	echo
	echo "targets:"
	printf '  %-54s %7s  %s\n' "QD1 IOPS migrating / idle >= 0.8" "$r1" "$(verdict "$r1" '>=' 0.8)"
	printf '  %-54s %7s  %s\n' "QD$JOBS IOPS migrating / idle >= 0.8" "$r8" "$(verdict "$r8" '>=' 0.8)"
	printf '  %-54s %7s  %s\n' "QD1 write p99.9 migrating / idle <= 2 (worst round)" "$lw1" "$(verdict "$lw1" '<=' 2)"
	printf '  %-54s %7s  %s\n' "QD$JOBS write p99.9 migrating / idle <= 2 (worst round)" "$lw8" "$(verdict "$lw8" '<=' 2)"
	printf '  %-54s %7s  %s\n' "QD1 fdatasync p99.9 migrating / idle <= 2 (worst round)" "$ls1" "$(verdict "$ls1" '<=' 2)"
	printf '  %-54s %7s  %s\n' "QD$JOBS fdatasync p99.9 migrating / idle <= 2 (worst round)" "$ls8" "$(verdict "$ls8" '<=' 2)"
	printf '  %-54s %7s  %s\n' "QD1 device flushes per migrating guest flush <= 1.1" "$fl1" "$(verdict "$fl1" '<=' 1.1)"
	printf '  %-54s %7s  %s\n' "QD1 journal commits per migrating guest flush (info)" "$jc1" "-"
	printf '  %-54s %7s  %s\n' "QD$JOBS device flushes per migrating guest flush (info)" "$fl8" "-"
} >"$OUT"
cat "$OUT"
