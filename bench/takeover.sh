#!/bin/sh
# bench/takeover.sh: how long the FUSE connection goes unserved when the worker is killed
# (SIGKILL, the supervisor starts another, which takes over and has the kernel resend what the
# dead one had read) and when it hands over gracefully (relocctl restart, and restart --exec).
#
# A client writes 4 KiB blocks as fast as it can (fio randwrite, O_DIRECT, psync, QD1) through
# the mount for the whole of each phase, with a per-I/O latency log.  Each phase:
#   kill      TAKEOVER_N (default 50) times: kill -9 the worker, wait until another serves
#   restart   TAKEOVER_N times relocctl restart
#   exec      TAKEOVER_EXEC_N (default 10) times relocctl restart --exec (the same binary)
# with TAKEOVER_GAP_S (default 0.3) seconds between events.  Per event relocfs reports how long
# the connection went unserved (status --json last_unserved_ms: from the moment the old worker
# stopped reading, or the supervisor reaped a dead one, to the new one's first read; a kill's
# figure leaves out the dead process's teardown before the reap); we report p50/p99 (nearest
# rank).  The client's view, which includes everything: its longest write and the writes over
# 20 ms in the phase.
#
#   TAKEOVER_N, TAKEOVER_EXEC_N, TAKEOVER_GAP_S as above
set -eu
. "$(dirname "$0")/lib.sh"

N=${TAKEOVER_N:-50}
NX=${TAKEOVER_EXEC_N:-10}
GAP=${TAKEOVER_GAP_S:-0.3}
check_prereqs

W=$BENCH_DIR/takeover
OUT=$(result_file takeover)
FIO_PID=
cleanup() {
	if [ -n "$FIO_PID" ]; then kill "$FIO_PID" 2>/dev/null || true; wait "$FIO_PID" 2>/dev/null || true; fi
	unmount_relocfs
	[ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$W"
mkdir -p "$W/src" "$W/mnt"

pct() {
	sort -g "$1" | awk -v p="$2" '{v[NR] = $1}
		END { if (!NR) { print "n/a"; exit } r = int(p / 100 * NR); if (r < p / 100 * NR) r++;
		      if (r < 1) r = 1; print v[r] }'
}
worker() { ctl status --json | jq -r '.worker_pid // 0'; }
unserved() { ctl status --json | jq -r '.last_unserved_ms'; }

{
	echo "relocfs worker takeover: how long the connection is unserved, with a QD1 O_DIRECT writer"
	echo
	machine_facts
	echo "client:      fio --rw=randwrite --bs=4k --direct=1 --ioengine=psync --iodepth=1 over 256 MiB"
	echo "events:      $N kills (SIGKILL), $N restarts, $NX restarts --exec; ${GAP} s apart"
	echo
} >"$OUT.tmp"

make_image "$W/src/img" 256 0
mount_relocfs "$W/src" "$W/mnt"
SUPERVISOR=$DAEMON_PID
summary=
for phase in kill restart exec; do
	case $phase in exec) n=$NX ;; *) n=$N ;; esac
	[ "$n" -gt 0 ] || continue
	rm -f "$W"/lat_clat.*.log
	fio --name=client --filename="$W/mnt/img" --size=256M --rw=randwrite --bs=4k \
	    --direct=1 --ioengine=psync --iodepth=1 --time_based --runtime=3600 --randrepeat=0 \
	    --norandommap --write_lat_log="$W/lat" --log_avg_msec=0 \
	    --output-format=json --output="$W/fio.json" >/dev/null 2>"$W/fio.err" &
	FIO_PID=$!
	sleep 2
	kill -0 "$FIO_PID" || die "fio did not start: $(cat "$W/fio.err")"
	: >"$W/$phase.samples"
	i=1
	while [ $i -le "$n" ]; do
		old=$(worker)
		case $phase in
		kill)
			kill -9 "$old"
			j=0
			while new=$(worker) && { [ "$new" = 0 ] || [ "$new" = "$old" ]; }; do
				j=$((j + 1))
				[ $j -lt 600 ] || die "no new worker 30 s after killing $old"
				sleep 0.05
			done
			;;
		restart) ctl restart >/dev/null || die "restart $i failed" ;;
		exec) ctl restart --exec "$RELOCFS" >/dev/null || die "restart --exec $i failed" ;;
		esac
		u=$(unserved)
		echo "$u" >>"$W/$phase.samples"
		log "takeover $phase #$i: unserved $u ms"
		kill -0 "$FIO_PID" 2>/dev/null || die "the client died in $phase $i: $(cat "$W/fio.err")"
		sleep "$GAP"
		i=$((i + 1))
	done
	kill -INT "$FIO_PID"
	wait "$FIO_PID" || true
	FIO_PID=
	sed -n '/^{/,$p' "$W/fio.json" >"$W/fio.clean.json" && mv "$W/fio.clean.json" "$W/fio.json"
	grep -q '"jobs"' "$W/fio.json" || die "no fio output: $(cat "$W/fio.err")"
	ferr=$(jq '.jobs[0].error' "$W/fio.json")
	fiops=$(jq '.jobs[0].write.iops | floor' "$W/fio.json")
	fmax=$(jq '.jobs[0].write.clat_ns.max / 1000000 | . * 10 | floor / 10' "$W/fio.json")
	slow=$(awk -F, '$2 + 0 > 20000000 {n++} END {print n + 0}' "$W"/lat_clat.*.log)
	total=$(awk -F, 'END {print NR}' "$W"/lat_clat.*.log)
	p50=$(pct "$W/$phase.samples" 50) p99=$(pct "$W/$phase.samples" 99)
	{
		echo "== $phase: $n events =="
		echo "unserved (ms):$(tr '\n' ' ' <"$W/$phase.samples" | sed 's/^/ /')"
		echo "unserved: p50 $p50 ms, p99 $p99 ms, max $(sort -g "$W/$phase.samples" | tail -n 1) ms"
		echo "client:   $fiops write IOPS, fio error $ferr, longest write ${fmax} ms, $slow of $total writes over 20 ms"
		echo
	} >>"$OUT.tmp"
	case $phase in
	kill) goal=300 ;;
	*) goal=20 ;;
	esac
	summary="$summary
$(printf '  %-46s %7s  %s' "$phase: p99 unserved <= $goal ms" "$p99" "$(verdict "$p99" '<=' "$goal")")
$(printf '  %-46s %7s  %s' "$phase: client's longest write (ms), errors $ferr" "$fmax" "$( [ "$ferr" = 0 ] && echo ok || echo FAIL)")"
done
kill -0 "$SUPERVISOR" 2>/dev/null || die "the supervisor $SUPERVISOR is gone"
{
	echo "daemon memory: $(daemon_mem)"
	echo "targets (p99 by nearest rank; graceful goal 20 ms, crash goal 300 ms):$summary"
} >>"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
