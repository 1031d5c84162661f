#!/bin/sh
# bench/jobs.sh: many VMs relocated at once under one budget, against the same moved one after
# another the way one migration at a time allows.
#
# JOBS_N "VMs" (default 20), each an image of JOBS_MIB (default 256) MiB, all data, in its own
# directory, and a guest per VM: fio writing 4 KiB blocks at random through the mount, O_DIRECT,
# psync at QD1, at most JOBS_GUEST_IOPS (default 200) a second, from before a run until its end.
# (A guest that writes without a pause dirties blocks faster than a budget shared by twenty jobs
# merges them, and its job is never ready: that is what --rate and limit mean.)  Two runs, each starting with
# JOBS_IDLE_S (default 15) seconds of the guests alone (the idle baseline):
#   parallel:   `relocctl limit JOBS_BUDGET`, then JOBS_N jobs at once, priorities 1..N so that
#               they get ready one after another while the rest still copy; each job is cut over
#               (relocfs's own hold) as soon as a status poll (every 0.2 s) sees it ready.
#   sequential: the same images, now on the first run's destination and served by a new mount,
#               moved one at a time with the commands of one migration at a time: migrate --rate
#               JOBS_BUDGET, wait, cutover.
# Reported: each run's total time (first migrate to last cutover); per guest, its write IOPS over
# the seconds its job copied (migrate to the first poll that saw it ready) against its IOPS over
# the idle seconds of the same run (fio's per-second IOPS log, Unix time stamps), min / median /
# mean over the guests, goal >= 0.8; each cutover's hold as relocctl reports it, with how many
# other jobs were running then, p50 / p99 by nearest rank, goal p99 <= 5 ms with 19 others running
# (the first cutovers of the parallel run).
#
#   JOBS_N, JOBS_MIB, JOBS_BUDGET (default 100M), JOBS_IDLE_S, JOBS_GUEST_IOPS
set -eu
. "$(dirname "$0")/lib.sh"

N=${JOBS_N:-20}
MIB=${JOBS_MIB:-256}
BUDGET=${JOBS_BUDGET:-100M}
IDLE=${JOBS_IDLE_S:-15}
GIOPS=${JOBS_GUEST_IOPS:-200}
check_prereqs

W=$BENCH_DIR/jobs
OUT=$(result_file jobs)
FIO_PID=
POLLER=
cleanup() {
	if [ -n "$POLLER" ]; then kill "$POLLER" 2>/dev/null || true; fi
	if [ -n "$FIO_PID" ]; then kill "$FIO_PID" 2>/dev/null || true; wait "$FIO_PID" 2>/dev/null || true; fi
	unmount_relocfs
	[ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$W"
mkdir -p "$W/src" "$W/mnt"
avail=$(df -m --output=avail "$BENCH_DIR" | tail -1)
need=$((N * MIB * 3 + 2048))
[ "$avail" -gt "$need" ] || die "need $need MiB free in $BENCH_DIR, have $avail"

vms() { i=1; while [ $i -le "$N" ]; do printf 'vm%02d\n' $i; i=$((i + 1)); done; }
wall() { date +%s.%N; }

# what else runs: the busiest processes when the benchmark starts (a shared machine)
busy=$(ps -eo pcpu=,comm= --sort=-pcpu | head -n 8 | awk '{ printf "%s%s %s%%", (NR > 1 ? ", " : ""), $2, $1 }')
log "jobs: writing $N images of $MIB MiB"
for vm in $(vms); do
	mkdir -p "$W/src/$vm"
	make_image "$W/src/$vm/disk.img" "$MIB" 0
done

# guests_start RUN: one fio, a job per VM on MNT, per-second IOPS logs with Unix time stamps
guests_start() {
	{
		echo "[global]"
		echo "rw=randwrite"
		echo "bs=4k"
		echo "direct=1"
		echo "ioengine=psync"
		echo "iodepth=1"
		echo "rate_iops=$GIOPS"
		echo "size=${MIB}M"
		echo "time_based=1"
		echo "runtime=36000"
		echo "randrepeat=0"
		echo "norandommap=1"
		echo "write_iops_log=$W/$1"
		echo "log_avg_msec=1000"
		echo "log_unix_epoch=1"
		for vm in $(vms); do
			echo "[$vm]"
			echo "filename=$MNT/$vm/disk.img"
		done
	} >"$W/$1.fio"
	fio --output-format=json --output="$W/$1.json" "$W/$1.fio" >/dev/null 2>"$W/$1.err" &
	FIO_PID=$!
	sleep 2
	kill -0 "$FIO_PID" || die "fio did not start: $(cat "$W/$1.err")"
}

guests_stop() {
	kill -INT "$FIO_PID" 2>/dev/null || true
	wait "$FIO_PID" 2>/dev/null || true
	FIO_PID=
}

# iops RUN K FROM TO: mean write IOPS of guest K (1-based) over the whole seconds in [FROM, TO]
iops() {
	awk -F, -v a="$3" -v b="$4" '{ t = $1 / 1000 } t >= a && t <= b { s += $2; n++ }
		END { if (n) printf "%.0f", s / n; else print "" }' "$W/$1_iops.$2.log"
}

# pct FILE COLUMN P: nearest-rank percentile
pct() {
	awk -v c="$2" '{print $c}' "$1" | sort -g | awk -v p="$3" '{v[NR] = $1}
		END { if (!NR) { print "n/a"; exit } r = int(p / 100 * NR); if (r < p / 100 * NR) r++;
		      if (r < 1) r = 1; print v[r] }'
}

held_of() { echo "$1" | sed -n 's/.*I\/O held \([0-9.]*\) ms.*/\1/p'; }

# ---- parallel ------------------------------------------------------------------------------
mount_relocfs "$W/src" "$W/mnt"
guests_start par
log "jobs: parallel run: $IDLE s of the guests alone"
idle0=$(wall)
sleep "$IDLE"
idle1=$(wall)
ctl limit "$BUDGET" >/dev/null
mkdir -p "$W/dstA"
: >"$W/par.windows"
: >"$W/par.holds"
: >"$W/par.start"
: >"$W/par.polls"
t0=$(wall)
p=1
for vm in $(vms); do
	ctl migrate --job "$vm" --priority "$p" --to "$W/dstA" "$vm/disk.img" >/dev/null
	echo "$vm $(wall)" >>"$W/par.start"
	p=$((p + 1))
done
log "jobs: parallel run: $N jobs migrating under $BUDGET/s"
# a poller writes "TIME NAME STATE" for every job, every 0.2 s
(
	while :; do
		t=$(wall)
		ctl status --json 2>/dev/null | jq -r --arg t "$t" '.jobs[] | "\($t) \(.name) \(.state)"' \
			>>"$W/par.polls" 2>/dev/null || true
		sleep 0.2
	done
) &
POLLER=$!
done_n=0
while [ $done_n -lt "$N" ]; do
	for vm in $(awk '$3 == "ready" { print $2 }' "$W/par.polls" | awk '!seen[$0]++'); do
		grep -q "^$vm " "$W/par.windows" && continue
		t_ready=$(awk -v v="$vm" '$2 == v && $3 == "ready" { print $1; exit }' "$W/par.polls")
		t_start=$(awk -v v="$vm" '$1 == v { print $2 }' "$W/par.start")
		echo "$vm $t_start $t_ready" >>"$W/par.windows"
		others=$((N - done_n - 1))
		copying=$(tail -n "$N" "$W/par.polls" | awk '$3 == "copying"' | wc -l)
		reply=$(ctl cutover --job "$vm" --timeout 600) || die "cutover of $vm failed: $reply"
		echo "$vm $(held_of "$reply") $others $copying" >>"$W/par.holds"
		done_n=$((done_n + 1))
		log "jobs: $vm cut over ($done_n of $N): held $(held_of "$reply") ms, $others others running, $copying copying"
	done
	if awk '$3 == "failed"' "$W/par.polls" | grep -q .; then die "a job failed: $(ctl status)"; fi
	sleep 0.2
done
t1=$(wall)
kill "$POLLER" 2>/dev/null || true
wait "$POLLER" 2>/dev/null || true
POLLER=
guests_stop
unmount_relocfs
par_total=$(elapsed "$t0" "$t1")

# ---- sequential -----------------------------------------------------------------------------
mkdir -p "$W/mnt2" "$W/dstB"
mount_relocfs "$W/dstA" "$W/mnt2"
guests_start seq
log "jobs: sequential run: $IDLE s of the guests alone"
sidle0=$(wall)
sleep "$IDLE"
sidle1=$(wall)
: >"$W/seq.windows"
: >"$W/seq.holds"
t0=$(wall)
i=0
for vm in $(vms); do
	ts=$(wall)
	ctl migrate --rate "$BUDGET" --to "$W/dstB" "$vm/disk.img" >/dev/null
	while :; do
		rc=0; poll_ready || rc=$?
		[ $rc = 0 ] && break
		[ $rc = 2 ] && die "migration of $vm failed: $STATUS"
		sleep 0.2
	done
	tr=$(wall)
	echo "$vm $ts $tr" >>"$W/seq.windows"
	reply=$(ctl cutover --timeout 600) || die "cutover of $vm failed: $reply"
	echo "$vm $(held_of "$reply") 0 0" >>"$W/seq.holds"
	i=$((i + 1))
	log "jobs: $vm moved ($i of $N): held $(held_of "$reply") ms"
done
t1=$(wall)
guests_stop
unmount_relocfs
seq_total=$(elapsed "$t0" "$t1")

# ---- report ---------------------------------------------------------------------------------
# ratios RUN IDLE0 IDLE1: "vm idle copying ratio seconds" per guest
ratios() {
	k=1
	for vm in $(vms); do
		read -r _ a b <<EOF
$(grep "^$vm " "$W/$1.windows")
EOF
		idle=$(iops "$1" "$k" "$2" "$3")
		during=$(iops "$1" "$k" "$a" "$b")
		echo "$vm $idle $during $(ratio "$during" "$idle") $(elapsed "$a" "$b")"
		k=$((k + 1))
	done
}
ratios par "$idle0" "$idle1" >"$W/par.ratios"
ratios seq "$sidle0" "$sidle1" >"$W/seq.ratios"
stat_ratios() {
	awk '$4 != "n/a" { print $4 }' "$1" | sort -g | awk '{ v[NR] = $1; s += $1 }
		END { if (!NR) { print "n/a n/a n/a"; exit }
		      printf "%.3f %.3f %.3f\n", v[1], (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), s / NR }'
}
read -r pmin pmed pmean <<EOF
$(stat_ratios "$W/par.ratios")
EOF
read -r smin smed smean <<EOF
$(stat_ratios "$W/seq.ratios")
EOF
awk -v n="$((N - 1))" '$3 >= n' "$W/par.holds" >"$W/par.holds.full"
awk -v n="$(((N - 1) / 2))" '$3 >= n' "$W/par.holds" >"$W/par.holds.half"
h99=$(pct "$W/par.holds" 2 99)
h99full=$(pct "$W/par.holds.full" 2 99)
h99half=$(pct "$W/par.holds.half" 2 99)

{
	echo "relocfs: $N VMs relocated at once under one budget, against one after another"
	echo
	machine_facts
	echo "busiest:     $busy (processes by CPU at the start)"
	echo "VMs:         $N images of $MIB MiB (all data), one directory each"
	echo "guests:      fio per VM, 4 KiB random writes, O_DIRECT, psync QD1, at most $GIOPS IOPS each,"
	echo "             all the time"
	echo "budget:      $BUDGET/s (parallel: limit, priorities 1..$N; sequential: --rate per job)"
	echo "idle:        $IDLE s of the guests alone before each run"
	echo
	echo "total time, first migrate to last cutover:"
	printf '  %-40s %8s s\n' "parallel ($N jobs at once)" "$par_total"
	printf '  %-40s %8s s\n' "sequential (one at a time)" "$seq_total"
	echo
	for run in par seq; do
		[ $run = par ] && echo "== parallel: per guest, write IOPS idle / while its job copied (s)" ||
			echo "== sequential: per guest, write IOPS idle / while its job copied (s)"
		awk '{ printf "  %s  idle %6s  copying %6s  ratio %6s  (%s s)\n", $1, $2, $3, $4, $5 }' "$W/$run.ratios"
	done
	echo
	echo "== cutover holds, parallel run (ms, others running, others copying at the last poll):"
	awk '{ printf "  %s  %6s ms  %2d running  %2d copying\n", $1, $2, $3, $4 }' "$W/par.holds"
	echo "   p50 $(pct "$W/par.holds" 2 50) ms, p99 $h99 ms over all $(wc -l <"$W/par.holds");" \
	     "p99 $h99full ms over the $(wc -l <"$W/par.holds.full") with $((N - 1)) others running," \
	     "$h99half ms over the $(wc -l <"$W/par.holds.half") with at least $(((N - 1) / 2))"
	echo "== cutover holds, sequential run: p50 $(pct "$W/seq.holds" 2 50) ms, p99 $(pct "$W/seq.holds" 2 99) ms"
	echo
	echo "targets:"
	printf '  %-46s %7s  %s\n' "parallel: min guest IOPS copying/idle >= 0.8" "$pmin" "$(verdict "$pmin" '>=' 0.8)"
	printf '  %-46s %7s  %s\n' "parallel: median guest IOPS copying/idle" "$pmed" "-"
	printf '  %-46s %7s  %s\n' "sequential: min guest IOPS copying/idle" "$smin" "-"
	printf '  %-46s %7s  %s\n' "parallel: cutover hold p99 (all) <= 5 ms" "$h99" "$(verdict "$h99" '<=' 5)"
	printf '  %-46s %7s  %s\n' "parallel: hold p99, $((N - 1)) others running <= 5 ms" "$h99full" "$(verdict "$h99full" '<=' 5)"
	printf '  %-46s %7s  %s\n' "total time parallel / sequential (info)" "$(ratio "$par_total" "$seq_total")" "-"
} >"$OUT"
cat "$OUT"
