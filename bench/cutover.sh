#!/bin/sh
# bench/cutover.sh: how long guest I/O waits at cutover, with a client writing 4 KiB blocks
# as fast as it can (fio randwrite, O_DIRECT, psync, one job, QD1) through the mount.
#
# For each image size: CUTOVER_N (default 20) rounds of migrate -> ready -> cutover, the
# destination alternating between two directories (the one we go to is emptied first; it is
# never the one being served).  Each cutover reply gives "I/O held X ms (N request(s) parked,
# longest Y ms)"; we report p50/p99 (nearest rank) of X and Y per size.  With 20 samples p99 is
# the maximum.  The client's own view: fio's completion-latency maximum and the number of writes
# that took longer than 20 ms over the whole run (from its per-I/O latency log).
#
#   CUTOVER_SIZES     image sizes in MiB (default "1024 8192")
#   CUTOVER_DATA_MIB  data written at the start of every image, the rest is a hole; the client
#                     writes only there (default 1024 for the 1 GiB image, 512 for bigger ones).
#                     Why: a random writer over the holes of a sparse image fragments it into
#                     thousands of 4 KiB extents, and the copier then takes minutes per round
#                     (see the report); the pause at cutover is what is measured here.
#   CUTOVER_N         cutovers per size (default 20)
#   CUTOVER_BUDGET_S  no new round starts after this many seconds per size (default 700), to keep
#                     `make bench` bounded; the report says how many rounds ran
set -eu
. "$(dirname "$0")/lib.sh"

SIZES=${CUTOVER_SIZES:-1024 8192}
N=${CUTOVER_N:-20}
BUDGET=${CUTOVER_BUDGET_S:-700}
check_prereqs

W=$BENCH_DIR/cutover
OUT=$(result_file cutover)
FIO_PID=
cleanup() {
	if [ -n "$FIO_PID" ]; then kill "$FIO_PID" 2>/dev/null || true; wait "$FIO_PID" 2>/dev/null || true; fi
	unmount_relocfs
	[ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$W"
mkdir -p "$W"

# pct FILE COLUMN P: nearest-rank percentile of a column of numbers
pct() {
	awk -v c="$2" '{print $c}' "$1" | sort -g | awk -v p="$3" '{v[NR] = $1}
		END { if (!NR) { print "n/a"; exit } r = int(p / 100 * NR); if (r < p / 100 * NR) r++;
		      if (r < 1) r = 1; print v[r] }'
}

# data_mib SIZE: MiB of data at the start of the image
data_mib() {
	if [ -n "${CUTOVER_DATA_MIB:-}" ]; then echo "$CUTOVER_DATA_MIB"
	elif [ "$1" -le 1024 ]; then echo "$1"
	else echo 512; fi
}

need=0
for s in $SIZES; do need=$((need + $(data_mib "$s") * 3)); done
avail=$(df -m --output=avail "$BENCH_DIR" | tail -1)
[ "$avail" -gt $((need + 1024)) ] || die "need about $need MiB free in $BENCH_DIR, have $avail"

{
	echo "relocfs cutover pause: 4 KiB O_DIRECT random writes at QD1 during repeated cutovers"
	echo
	machine_facts
	echo "client:      fio --rw=randwrite --bs=4k --direct=1 --ioengine=psync --iodepth=1 over the"
	echo "             data part of the image"
	echo "rounds:      $N per size: migrate -> status polled every 0.05 s until ready -> cutover"
	echo "             (no hook: relocfs's own hold), destinations alternating A/B"
	echo
} >"$OUT.tmp"

summary=
for size in $SIZES; do
	D=$W/$size
	mkdir -p "$D/src" "$D/mnt"
	data=$(data_mib "$size")
	log "cutover: writing a ${size} MiB image, the first ${data} MiB of it data"
	make_image "$D/src/img" "$data" 0
	truncate -s "${size}M" "$D/src/img"
	if [ "$data" = "$size" ]; then kind="all data"; else kind="the first $data MiB data, the rest a hole"; fi
	mount_relocfs "$D/src" "$D/mnt"
	fio --name=client --filename="$D/mnt/img" --size="${data}M" --rw=randwrite --bs=4k \
	    --direct=1 --ioengine=psync --iodepth=1 --time_based --runtime=3600 --randrepeat=0 \
	    --norandommap --write_lat_log="$D/lat" --log_avg_msec=0 \
	    --output-format=json --output="$D/fio.json" >/dev/null 2>"$D/fio.err" &
	FIO_PID=$!
	sleep 2
	kill -0 "$FIO_PID" || die "fio did not start: $(cat "$D/fio.err")"
	: >"$D/samples"
	i=1
	t_size=$(now)
	while [ $i -le "$N" ]; do
		if [ $i -gt 1 ] && [ "$(elapsed "$t_size" "$(now)" | cut -d. -f1)" -ge "$BUDGET" ]; then
			log "cutover $size MiB: time budget of $BUDGET s spent after $((i - 1)) rounds"
			break
		fi
		if [ $((i % 2)) = 1 ]; then to=$D/A; else to=$D/B; fi
		rm -rf "$to"
		t0=$(now)
		ctl migrate --to "$to" >/dev/null
		while :; do
			rc=0; poll_ready || rc=$?
			[ $rc = 0 ] && break
			[ $rc = 2 ] && die "migration $i failed: $STATUS"
			sleep 0.05
		done
		t1=$(now)
		reply=$(ctl cutover) || die "cutover $i failed: $reply"
		t2=$(now)
		held=$(echo "$reply" | sed -n 's/.*I\/O held \([0-9.]*\) ms.*/\1/p')
		longest=$(echo "$reply" | sed -n 's/.*longest \([0-9.]*\) ms.*/\1/p')
		parked=$(echo "$reply" | sed -n 's/.*(\([0-9]*\) request(s) parked.*/\1/p')
		[ -n "$held" ] && [ -n "$longest" ] || die "cannot parse the cutover reply: $reply"
		echo "$i $held $longest $parked $(elapsed "$t0" "$t1") $(elapsed "$t1" "$t2")" >>"$D/samples"
		log "cutover $size MiB #$i: held $held ms, longest $longest ms, $parked parked"
		kill -0 "$FIO_PID" 2>/dev/null || die "the client died during round $i: $(cat "$D/fio.err")"
		i=$((i + 1))
	done
	kill -INT "$FIO_PID"
	wait "$FIO_PID" || true
	FIO_PID=
	# fio writes "fio: terminating on signal 2" ahead of the JSON
	sed -n '/^{/,$p' "$D/fio.json" >"$D/fio.clean.json" && mv "$D/fio.clean.json" "$D/fio.json"
	grep -q '"jobs"' "$D/fio.json" || die "no fio output: $(cat "$D/fio.err")"
	ferr=$(jq '.jobs[0].error' "$D/fio.json")
	fiops=$(jq '.jobs[0].write.iops | floor' "$D/fio.json")
	fmax=$(jq '.jobs[0].write.clat_ns.max / 1000000' "$D/fio.json")
	# per-I/O completion latency log: msec, nsec, dir, bs, offset
	slow=$(awk -F, '$2 + 0 > 20000000 {n++} END {print n + 0}' "$D"/lat_clat.*.log)
	total=$(awk -F, 'END {print NR}' "$D"/lat_clat.*.log)
	unmount_relocfs

	h50=$(pct "$D/samples" 2 50) h99=$(pct "$D/samples" 2 99)
	l50=$(pct "$D/samples" 3 50) l99=$(pct "$D/samples" 3 99)
	m50=$(pct "$D/samples" 5 50)
	{
		echo "== ${size} MiB image ($kind): $(wc -l <"$D/samples") of $N rounds within the ${BUDGET} s budget =="
		echo "round  held_ms  longest_parked_ms  parked  migrate_to_ready_s  cutover_cmd_s"
		awk '{printf "%5d %8s %18s %7s %19s %14s\n", $1, $2, $3, $4, $5, $6}' "$D/samples"
		echo "held:    p50 $h50 ms, p99 $h99 ms"
		echo "longest: p50 $l50 ms, p99 $l99 ms"
		echo "migrate->ready: p50 $m50 s; cutover command (waits for ready, syncs, holds): p50 $(pct "$D/samples" 6 50) s"
		echo "client:  $fiops write IOPS over the run, fio error $ferr, max completion latency ${fmax} ms," \
		     "$slow of $total writes over 20 ms"
		echo
	} >>"$OUT.tmp"
	summary="$summary
$(printf '  %-46s %7s  %s' "${size} MiB: p99 longest parked <= 20 ms" "$l99" "$(verdict "$l99" '<=' 20)")
$(printf '  %-46s %7s  %s' "${size} MiB: p99 I/O held <= 20 ms" "$h99" "$(verdict "$h99" '<=' 20)")"
	rm -rf "$D"
done
{
	echo "targets (p99 by nearest rank over the rounds of each size):$summary"
} >>"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
