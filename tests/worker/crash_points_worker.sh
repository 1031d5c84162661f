#!/bin/bash
test_description='the worker killed at each named crash point under a flushing writer, while the supervisor keeps the mount: the writer never sees an error, every write stays (flushed or not), the job goes on, rolls forward or is aborted as the crash point implies, and finishing it leaves exactly what the writer wrote'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/../crash/lib_crash.sh"
. "$HERE/lib_worker.sh"
require_daemon
require_root

# One line per case: crash point, skip, tree or files, trigger (as in
# tests/crash/crash_points.sh), where the job must be once a new worker
# serves, and whether make check runs the case (check) or only make soak
# (soak: every case; check covers each crash point but the 256 MiB copy's).
# A worker that dies in a cutover that had not switched cancels it (the
# migration goes on); one that dies after the switch is rolled forward; an
# abort is finished by the next worker.
CASES_TABLE='
migrate-recorded   0   tree   migrate   migrating  check
migrate-recorded   0   files  migrate   migrating  soak
copier-checkpoint  0   tree   bigcopy   migrating  soak
merge-batch        0   tree   run       migrating  soak
merge-batch        5   files  run       migrating  check
wal-appended       0   tree   run       migrating  check
wal-appended       300 files  run       migrating  soak
flush-wal-synced   0   tree   run       migrating  check
flush-wal-synced   40  files  run       migrating  soak
checkpoint-data-synced 0 tree run       migrating  soak
checkpoint-data-synced 3 files run      migrating  soak
checkpoint-committed 0 tree  run        migrating  soak
checkpoint-committed 3 files run        migrating  check
journal-data-synced 0  tree   run       migrating  soak
cutover-merged     0   tree   cutover   migrating  soak
cutover-merged     0   files  cutover   migrating  check
cutover-released   0   tree   cutover   dest       check
cutover-released   0   files  cutover   dest       soak
cutover-committed  0   tree   cutover   dest       soak
cutover-committed  0   files  cutover   dest       check
abort-recorded     0   tree   abortcopy source     soak
abort-recorded     0   files  abort     source     check
abort-merged       0   tree   abort     source     check
abort-merged       0   files  abortcopy source     soak
abort-committed    0   tree   abort     source     soak
abort-committed    0   files  abort     source     check
'

no_job() {
	[ "$(status_json | jq -r '.destination // ""')" = "" ]
}

n=0
while read -r -u 3 point skip mode trigger want set; do
	[ -n "$point" ] || continue
	[ "$set" = check ] || [ -n "${RELOCFS_SOAK:-}" ] || continue
	[ -z "${RELOC_CRASH_ONLY:-}" ] || [ "$RELOC_CRASH_ONLY" = "$point" ] || continue
	n=$((n + 1))
	seed=$((9000 + n * 10))
	CRASH_MODE=$mode
	step "[$n] crash point $point (skip $skip), $mode job, $trigger: the worker dies"
	crash_reset
	[ "$trigger" != bigcopy ] || head -c 272M /dev/urandom >"$TEST_SRC/a.img"
	RELOCFS_CRASHPOINT_SCOPE=worker crash_mount_armed "$point" "$skip"
	first=$(worker_pid)
	crash_writer "$seed"
	case $trigger in
	migrate)
		crash_migrate >/dev/null 2>&1 && fail "migrate succeeded although the worker was to die in it"
		;;
	run|bigcopy)
		# a write of the writer's may reach the point before the
		# migrate's reply is out (the reply is then lost with the
		# worker); the job was recorded first, and crash_expect below
		# says whether it carried on
		crash_migrate >/dev/null 2>&1 || say "  the worker died before the migrate's reply"
		;;
	cutover)
		crash_migrate >/dev/null
		ctl wait --timeout 120 >/dev/null
		ctl cutover --timeout 60 >/dev/null 2>&1 && fail "cutover succeeded although the worker was to die in it"
		;;
	abort)
		crash_migrate >/dev/null
		ctl wait --timeout 120 >/dev/null
		ctl abort >/dev/null 2>&1 && fail "abort succeeded although the worker was to die in it"
		;;
	abortcopy)
		crash_migrate --rate 4M >/dev/null
		wait_until 60 eval '[ "$(file_field a.img bytes_copied)" -gt 0 ]' || fail "the copy did not start"
		ctl abort >/dev/null 2>&1 && fail "abort succeeded although the worker was to die in it"
		;;
	*) fail "unknown trigger '$trigger'" ;;
	esac
	wait_until 120 new_worker_since "$first" ||
		fail "no new worker within 120 s (crash point not reached?); status: $(status_json 2>&1)"
	grep -q "crash point '$point' reached" "$TEST_DIR/relocfs.log" ||
		fail "a new worker serves, but the last did not die at crash point '$point'"
	kill -0 "$RELOCFS_PID" || fail "the supervisor died with the worker"
	is_mounted "$TEST_MNT" || fail "the mount went away with the worker"
	writer_running || fail "the writer stopped: $(tail -n 3 "$TEST_DIR/writer.log")"

	step "[$n] $point: the writer saw no error; the new worker serves every write, flushed or not; the job is $want"
	writer_stop 0
	check_final "$TEST_MNT" $CRASH_FILES
	# an abort the dead worker began is finished in the background
	[ "$want" != source ] || wait_until 120 no_job || fail "the abort did not finish: $(status_json)"
	crash_expect "$want"

	step "[$n] $point: finish the job under a new writer; the backend holds exactly what it wrote"
	crash_complete "$want" $((seed + 1))
done 3<<<"$CASES_TABLE"
[ "$n" -gt 0 ] || fail "no case selected"
say "  $CASES crash case(s) passed"
test_done
