#!/bin/sh
# bench/flush.sh: what a guest flush costs while its file migrates (issue 16).  fio inside the
# mount, 4 KiB O_DIRECT random writes with an fdatasync after each (--fdatasync=1), at QD1 (one
# job) and QD8 (FLUSH_JOBS=8 psync jobs, each flushing its own writes), on FLUSH_IMG_MIB
# (default 512) MiB images, in one run:
#
#   idle:        img and ctrl, both passthrough
#   FLUSH_ROUNDS (default 2) times:
#   migrating:   `migrate --to DEST img` (only img), after `wait` (copy done, the merger running)
#   idle again:  after `abort`, passthrough again
#
# In each phase fio alternates between the two files in FLUSH_SLICE-second (default 5) slices,
# ctrl img img ctrl ctrl img img ctrl (ABBA twice), at QD1 then QD8.  ctrl never migrates: it
# shares the mount, the filesystem and the moment with img, so img / ctrl within a phase cancels
# the drift of a machine shared with other work, which moves the same fio job by 2x within
# minutes (idle img alone went from 443 to 1 299 IOPS in one earlier run here).  The migrating
# ratio is img / ctrl while img migrates, divided by img / ctrl while both are idle (before, and
# again after the abort): 1.0 means a migrating flush costs what an idle one does.  Latency:
# fio's p99.9 of the write and of the fdatasync, averaged over a kind's slices, img over ctrl.
#
# Source, delta store and destination sit on one filesystem: a fresh FLUSH_FS (ext4, or xfs)
# made on a loop device (direct I/O) over a zero-filled file in BENCH_DIR, so that the result
# does not depend on how the host's filesystem is set up and the counters below see only this
# benchmark; FLUSH_FS=none runs in BENCH_DIR itself (device counters then include the rest of the
# host).  Per slice: IOPS; per guest flush: device cache flushes (/sys/block/DEV/stat), ext4
# jbd2 commits (/proc/fs/jbd2/DEV-8/info) or xfs log writes, KiB written to the device.  An idle
# flush costs one device flush and no journal commit; the counters say how far a migrating one
# is from that, and where its time goes when a target is missed.
set -eu
. "$(dirname "$0")/lib.sh"

IMG=${FLUSH_IMG_MIB:-512}
SLICE=${FLUSH_SLICE:-5}
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
	loop_mib=$((IMG * 5 + 1024))
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
log "flush: writing two ${IMG} MiB images"
make_image "$FSDIR/src/img" "$IMG" 0
make_image "$FSDIR/src/ctrl" "$IMG" 0
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

# slice PHASE FILE QD N: one fio run on FILE; appends "PHASE FILE QD N iops flushes/fl commits/fl
# KiB/fl write_p999_ms sync_p999_ms load" to $W/rows
slice() {
	pre=$(counters)
	fio --name="$2" --filename="$FSDIR/mnt/$2" --size="${IMG}M" --rw=randwrite --bs=4k \
	    --direct=1 --ioengine=psync --iodepth=1 --numjobs="$3" --group_reporting --fdatasync=1 \
	    --time_based --runtime="$SLICE" --randrepeat=0 --norandommap \
	    --output-format=json --output="$W/$1-$2-$3-$4.json" >/dev/null || die "fio $1 $2 failed"
	post=$(counters)
	jq -r --arg ph "$1" --arg f "$2" --arg qd "$3" --arg n "$4" --arg pre "$pre" --arg post "$post" \
	      --arg load "$(cut -d' ' -f1 /proc/loadavg)" '
		.jobs[0] as $j | ($pre | split(" ") | map(tonumber)) as $a |
		($post | split(" ") | map(tonumber)) as $b | ($j.write.total_ios) as $t |
		def per(i): if $t > 0 then (($b[i] - $a[i]) / $t * 100 | round / 100) else 0 end;
		[$ph, $f, $qd, $n, ($j.write.iops | round), per(0), per(2),
		 (if $t > 0 then (($b[1] - $a[1]) * 512 / 1024 / $t * 10 | round / 10) else 0 end),
		 (($j.write.clat_ns.percentile["99.900000"] // 0) / 1e6 * 100 | round / 100),
		 (($j.sync.lat_ns.percentile["99.900000"] // 0) / 1e6 * 100 | round / 100), $load] | @tsv' \
		"$W/$1-$2-$3-$4.json" >>"$W/rows"
}

# phase NAME: ABBA twice at QD1, then at QD$JOBS
phase() {
	for q in 1 "$JOBS"; do
		k=0
		for f in ctrl img img ctrl ctrl img img ctrl; do
			k=$((k + 1))
			slice "$1" "$f" "$q" "$k"
		done
		log "flush: $1 QD$q: img $(awk -F'\t' -v p="$1" -v q="$q" '$1 == p && $2 == "img" && $3 == q {s += $5; n++} END {printf "%.0f", s / n}' "$W/rows"), ctrl $(awk -F'\t' -v p="$1" -v q="$q" '$1 == p && $2 == "ctrl" && $3 == q {s += $5; n++} END {printf "%.0f", s / n}' "$W/rows") IOPS"
	done
}

: >"$W/rows"
: >"$W/rounds"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
phase idle0
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
	phase "mig$r"
	st=$(ctl status --json)
	delta=$(echo "$st" | jq '[.files[].delta_bytes] | add')
	ctl abort >/dev/null
	phase "idle$r"
	echo "$r $t_ready $delta" >>"$W/rounds"
	r=$((r + 1))
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

# m PHASE FILE QD COL: mean of column COL over the slices of FILE at QD in PHASE
m() { awk -F'\t' -v p="$1" -v f="$2" -v q="$3" -v c="$4" '$1 == p && $2 == f && $3 == q {s += $c; n++} END {printf "%.2f", n ? s / n : 0}' "$W/rows"; }
# per phase and QD: img/ctrl for IOPS, write p99.9, fdatasync p99.9
: >"$W/pairs"
for ph in $(cut -f1 "$W/rows" | uniq); do
	for q in 1 "$JOBS"; do
		echo "$ph $q $(m "$ph" img "$q" 5) $(m "$ph" ctrl "$q" 5) $(ratio "$(m "$ph" img "$q" 5)" "$(m "$ph" ctrl "$q" 5)") $(m "$ph" img "$q" 9) $(m "$ph" ctrl "$q" 9) $(ratio "$(m "$ph" img "$q" 9)" "$(m "$ph" ctrl "$q" 9)") $(m "$ph" img "$q" 10) $(m "$ph" ctrl "$q" 10) $(ratio "$(m "$ph" img "$q" 10)" "$(m "$ph" ctrl "$q" 10)")" >>"$W/pairs"
	done
done
# pr PHASE_REGEX QD COL: mean of column COL of the pairs of the phases matching
pr() { awk -v p="$1" -v q="$2" -v c="$3" '$1 ~ p && $2 == q {s += $c; n++} END {printf "%.3f", n ? s / n : 0}' "$W/pairs"; }
# the targets: migrating img/ctrl over idle img/ctrl (idle: before and after each round)
rel() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}'; }
r1=$(rel "$(pr '^mig' 1 5)" "$(pr '^idle' 1 5)")
r8=$(rel "$(pr '^mig' "$JOBS" 5)" "$(pr '^idle' "$JOBS" 5)")
lw1=$(rel "$(pr '^mig' 1 8)" "$(pr '^idle' 1 8)")
lw8=$(rel "$(pr '^mig' "$JOBS" 8)" "$(pr '^idle' "$JOBS" 8)")
ls1=$(rel "$(pr '^mig' 1 11)" "$(pr '^idle' 1 11)")
ls8=$(rel "$(pr '^mig' "$JOBS" 11)" "$(pr '^idle' "$JOBS" 11)")
# the plain sequence, img alone: migrating over the idle phases around it (info)
s1=$(rel "$(awk -F'\t' '$1 ~ /^mig/ && $2 == "img" && $3 == 1 {s += $5; n++} END {print s / n}' "$W/rows")" \
	"$(awk -F'\t' '$1 ~ /^idle/ && $2 == "img" && $3 == 1 {s += $5; n++} END {print s / n}' "$W/rows")")
s8=$(rel "$(awk -F'\t' -v q="$JOBS" '$1 ~ /^mig/ && $2 == "img" && $3 == q {s += $5; n++} END {print s / n}' "$W/rows")" \
	"$(awk -F'\t' -v q="$JOBS" '$1 ~ /^idle/ && $2 == "img" && $3 == q {s += $5; n++} END {print s / n}' "$W/rows")")
fl1=$(awk -F'\t' '$1 ~ /^mig/ && $2 == "img" && $3 == 1 {s += $6; n++} END {printf "%.2f", n ? s / n : 0}' "$W/rows")
fl8=$(awk -F'\t' -v q="$JOBS" '$1 ~ /^mig/ && $2 == "img" && $3 == q {s += $6; n++} END {printf "%.2f", n ? s / n : 0}' "$W/rows")
jc1=$(awk -F'\t' '$1 ~ /^mig/ && $2 == "img" && $3 == 1 {s += $7; n++} END {printf "%.2f", n ? s / n : 0}' "$W/rows")
kb1=$(awk -F'\t' '$1 ~ /^mig/ && $2 == "img" && $3 == 1 {s += $8; n++} END {printf "%.1f", n ? s / n : 0}' "$W/rows")
{
	echo "relocfs guest flush cost: 4 KiB randwrite O_DIRECT + fdatasync each, idle / migrating / idle after abort"
	echo
	machine_facts
	echo "filesystem:  $FSTYPE on $DEV (source, delta store and destination)"
	echo "fio:         --rw=randwrite --bs=4k --direct=1 --ioengine=psync --fdatasync=1 --runtime=$SLICE"
	echo "             per slice; QD1 = 1 job, QD$JOBS = $JOBS jobs; images ${IMG} MiB; $ROUNDS round(s)"
	echo "load:        $load0 at the start, $load1 at the end (1, 5, 15 min)"
	echo "others:      $(ps -eo comm= | grep -E '^(fio|relocfs|qemu|cc1|make|valgrind|stress)' | sort | uniq -c | awk '{printf "%s %s, ", $1, $2}' | sed 's/, $//') running at the end"
	awk '{printf "round %s:     ready %s s after migrate; delta %s bytes at the abort\n", $1, $2, $3}' "$W/rounds"
	echo
	echo "per phase, img over ctrl (means of the slices; latencies p99.9 in ms):"
	printf '%-6s %3s %8s %8s %6s %9s %9s %6s %9s %9s %6s\n' phase QD img ctrl ratio img_w999 ctrl_w999 ratio \
		img_s999 ctrl_s999 ratio
	awk '{printf "%-6s %3s %8.0f %8.0f %6s %9s %9s %6s %9s %9s %6s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11}' "$W/pairs"
	echo
	echo "every slice (flush/fl: device cache flushes per guest flush; commit/fl: jbd2 commits (ext4)"
	echo "or log writes (xfs) per guest flush; KiB/fl: KiB written to the device per guest flush):"
	printf '%-6s %-4s %3s %2s %6s %8s %9s %7s %9s %9s %5s\n' phase file QD n IOPS flush/fl commit/fl KiB/fl write_999 sync_999 load
	awk -F'\t' '{printf "%-6s %-4s %3s %2s %6s %8s %9s %7s %9s %9s %5s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11}' "$W/rows"
	echo
	echo "img alone, migrating over idle before and after (drifts with the machine; info):"
	echo "  QD1 $s1, QD$JOBS $s8"
	echo
	echo "targets (migrating img/ctrl over idle img/ctrl):"
	printf '  %-54s %7s  %s\n' "QD1 IOPS migrating / idle >= 0.8" "$r1" "$(verdict "$r1" '>=' 0.8)"
	printf '  %-54s %7s  %s\n' "QD$JOBS IOPS migrating / idle >= 0.8" "$r8" "$(verdict "$r8" '>=' 0.8)"
	printf '  %-54s %7s  %s\n' "QD1 write p99.9 migrating / idle <= 2" "$lw1" "$(verdict "$lw1" '<=' 2)"
	printf '  %-54s %7s  %s\n' "QD$JOBS write p99.9 migrating / idle <= 2" "$lw8" "$(verdict "$lw8" '<=' 2)"
	printf '  %-54s %7s  %s\n' "QD1 fdatasync p99.9 migrating / idle <= 2" "$ls1" "$(verdict "$ls1" '<=' 2)"
	printf '  %-54s %7s  %s\n' "QD$JOBS fdatasync p99.9 migrating / idle <= 2" "$ls8" "$(verdict "$ls8" '<=' 2)"
	printf '  %-54s %7s  %s\n' "QD1 device flushes per migrating guest flush <= 1.1" "$fl1" "$(verdict "$fl1" '<=' 1.1)"
	printf '  %-54s %7s  %s\n' "QD1 journal commits per migrating guest flush (info)" "$jc1" "-"
	printf '  %-54s %7s  %s\n' "QD1 KiB written per migrating guest flush (info)" "$kb1" "-"
	printf '  %-54s %7s  %s\n' "QD$JOBS device flushes per migrating guest flush (info)" "$fl8" "-"
} >"$OUT"
cat "$OUT"
