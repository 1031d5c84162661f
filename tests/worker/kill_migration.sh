#!/bin/bash
test_description='a migration goes on across worker deaths: the worker is killed during the copy, during the merge, in a cutover hold with requests parked, after a switch that was not durable yet, and during an abort; a writer that keeps its own model and reads back what it wrote never sees an error or a stale byte, the cancelled cutover is retried, the switched one is finished, the abort completes, and the files hold exactly what the writer wrote'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_worker.sh"
require_root
DEST=$TEST_DIR/dest
DEST2=$TEST_DIR/dest2
TOTAL=0

# kill_while PATH STATES N: kill the worker N times, each while PATH is in
# one of STATES (comma separated), 200 to 600 ms apart
kill_while() {
	local p=$1 states=$2 n=$3 i done=0
	for ((i = 0; i < n * 10 && done < n; i++)); do
		sleep "0.$((2 + RANDOM % 5))"
		state_is "$p" ${states//,/ } || continue
		kill_worker
		done=$((done + 1))
	done
	TOTAL=$((TOTAL + done))
	say "    $done kill(s) while '$p' was $states"
	[ "$done" -ge 1 ] || fail "'$p' was never $states when the worker could be killed"
}

export RELOCFS_DELAYPOINT=cutover-hold:1500000,cutover-switched:1500000,abort-hold:1500000
relocfs_mount
writer_start --seed 5 --size 16M --file "$TEST_MNT/a.img" --file "$TEST_MNT/b.img" --flush-every 8

step 'migrate (rate-limited), and kill the worker during the copy'
mkdir -p "$DEST"
ctl migrate --job km --to "$DEST" --rate 4M a.img b.img >/dev/null
kill_while a.img copying 8

step 'kill the worker during the merge'
wait_state 180 a.img merging ready
# the writer may dirty blocks faster than 4 MiB/s: unlimited, the merge
# catches up with it whatever the machine's speed
ctl limit --job km 0 >/dev/null
kill_while a.img merging,ready 8
wait_state 120 a.img ready
wait_state 120 b.img ready
ctl verify >"$TEST_DIR/verify.out" 2>&1 || fail "verify: $(cat "$TEST_DIR/verify.out")"
writer_running || fail "the writer stopped: $(tail -n 3 "$TEST_DIR/writer.log")"

step 'a cutover whose worker is killed in the hold, requests parked: cancelled, the migration goes on'
mark=$(log_mark)
w=$(worker_pid)
ctl cutover --timeout 60 >"$TEST_DIR/cut1.out" 2>&1 &
CUT=$!
log_since "$mark" "delay point 'cutover-hold' reached"
kill_worker "$w"
TOTAL=$((TOTAL + 1))
wait "$CUT" && fail "the cutover whose worker died reported success: $(cat "$TEST_DIR/cut1.out")"
log_since "$mark" "had not switched: cancelled"
wait_state 120 a.img ready
wait_state 120 b.img ready
writer_running || fail "the writer stopped: $(tail -n 3 "$TEST_DIR/writer.log")"

step 'a cutover whose worker is killed after the switch, before it is durable: finished'
mark=$(log_mark)
w=$(worker_pid)
ctl cutover --timeout 60 >"$TEST_DIR/cut2.out" 2>&1 &
CUT=$!
log_since "$mark" "delay point 'cutover-switched' reached"
kill_worker "$w"
TOTAL=$((TOTAL + 1))
wait "$CUT" || true
log_since "$mark" "finished the cutover to '$DEST'"
[ "$(status_field destination)" = null ] || fail "a job is still recorded: $(status_json)"
writer_running || fail "the writer stopped: $(tail -n 3 "$TEST_DIR/writer.log")"

step 'the whole tree migrates on; the worker is killed during the copy and in the abort'
mkdir -p "$DEST2"
ctl migrate --to "$DEST2" --rate 4M >/dev/null
kill_while a.img copying 2
mark=$(log_mark)
w=$(worker_pid)
ctl abort >"$TEST_DIR/abort.out" 2>&1 &
AB=$!
log_since "$mark" "delay point 'abort-hold' reached"
kill_worker "$w"
TOTAL=$((TOTAL + 1))
wait "$AB" || true
wait_until 60 eval '[ "$(status_field destination 2>/dev/null)" = null ]' ||
	fail "the abort did not finish in the new worker: $(status_json)"
[ -z "$(ls -A "$DEST2")" ] || fail "'$DEST2' is not empty after the abort: $(ls -A "$DEST2")"

step "the writer never saw an error or a stale byte ($TOTAL worker kills in all)"
[ "$TOTAL" -ge 20 ] || fail "only $TOTAL kills"
writer_stop
check_final "$TEST_MNT" a.img b.img
check_final "$DEST" a.img b.img

relocfs_umount
test_done
