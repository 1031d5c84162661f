#!/bin/bash
test_description='the worker handing the mount over dies while its standby waits (after the standby started, and after the old worker stopped but before it let the standby go): the standby takes the mount over as after a death, the writer sees no error, every write stays, and later hand-overs work'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_worker.sh"
. "$HERE/../crash/lib_crash.sh"
require_root

n=0
for point in handover-standby handover-stopped; do
	n=$((n + 1))
	crash_reset
	step "[$n] $point: a flushing writer on a mount whose worker dies there at its first hand-over"
	RELOCFS_CRASHPOINT_SCOPE=worker crash_mount_armed "$point" 0
	writer_start --seed $((70 + n)) --size 16M --file "$TEST_MNT/a.img" --direct --flush-every 4
	sleep 1
	first=$(worker_pid)
	mark=$(log_mark)

	step "[$n] $point: restart; the worker dies in the hand-over, the standby takes over"
	# the reply may or may not come before the worker dies at handover-stopped
	ctl restart >/dev/null 2>&1 || true
	wait_until 60 new_worker_since "$first" ||
		fail "no new worker within 60 s; status: $(status_json 2>&1)"
	log_since "$mark" "crash point '$point'" >/dev/null
	log_since "$mark" "while handing over; the standby worker [0-9]* takes over" >/dev/null
	kill -0 "$RELOCFS_PID" || fail "the supervisor died with the worker"
	is_mounted "$TEST_MNT" || fail "the mount went away with the worker"
	assert_eq 1 "$(status_field worker_deaths)" "workers that died"
	assert_eq 1 "$(status_field worker_restarts)" "workers after the first"
	writer_running || fail "the writer stopped: $(tail -n 3 "$TEST_DIR/writer.log")"

	step "[$n] $point: the writer saw no error; every write, flushed or not, is served"
	sleep 1
	writer_stop
	check_final "$TEST_MNT" a.img
	relocfs_umount
	check_final "$TEST_SRC" a.img
done
test_done
