#!/bin/bash
test_description='the daemon killed at each named crash point under a writer: restarted with the same arguments and no crash point it serves every flushed write, the job is migrating, switched or aborted as the crash point implies, and finishing the job leaves exactly what the writer wrote'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_crash.sh"
require_daemon

# One line per case:
#   crash point, skip (hits before the one that kills), migrate the tree or
#   the files, how the crash is reached, where the job must be after the
#   restart.
# Triggers:
#   migrate   the migrate command itself
#   run       a migration runs under the writer (copy, merge, flushes)
#   bigcopy   a.img starts with 272 MiB of data, so the base copy passes a
#             checkpoint (every 256 MiB)
# The store's points, in the order of a write, a flush and a checkpoint:
#   wal-appended            a write's WAL record is in the page cache, the
#                           write not answered yet
#   flush-wal-synced        a flush made the WAL durable, not answered yet
#   checkpoint-data-synced  a checkpoint synced the WAL and the delta file,
#                           its journal records not written yet
#   checkpoint-committed    the journal names the new WAL tail; the ring
#                           space before it not released yet
#   journal-data-synced     any journal commit (checkpoint, phase, copy
#                           progress) synced its data, records not written
#   cutover   wait until ready, then cutover
#   abort     wait until ready, then abort
#   abortcopy abort while the base copy still runs (--rate 4M)
CASES_TABLE='
migrate-recorded   0  tree   migrate   migrating
migrate-recorded   0  files  migrate   migrating
copier-checkpoint  0  tree   bigcopy   migrating
merge-batch        0  tree   run       migrating
merge-batch        5  tree   run       migrating
wal-appended       0  tree   run       migrating
wal-appended       300 files run       migrating
flush-wal-synced   0  tree   run       migrating
flush-wal-synced   40 files  run       migrating
checkpoint-data-synced 0 tree run      migrating
checkpoint-data-synced 3 files run     migrating
checkpoint-committed 0 tree  run       migrating
checkpoint-committed 3 files run       migrating
journal-data-synced 0 tree   run       migrating
cutover-merged     0  tree   cutover   source
cutover-merged     0  files  cutover   source
cutover-released   0  tree   cutover   source
cutover-released   0  files  cutover   source
cutover-committed  0  tree   cutover   dest
cutover-committed  0  files  cutover   dest
abort-recorded     0  tree   abortcopy source
abort-recorded     0  files  abort     source
abort-merged       0  tree   abort     source
abort-merged       0  files  abortcopy source
abort-committed    0  tree   abort     source
abort-committed    0  files  abort     source
'
# RELOC_CRASH_ONLY=POINT runs only the cases of one crash point
n=0
while read -r -u 3 point skip mode trigger want; do
	[ -n "$point" ] || continue
	[ -z "${RELOC_CRASH_ONLY:-}" ] || [ "$RELOC_CRASH_ONLY" = "$point" ] || continue
	n=$((n + 1))
	seed=$((7000 + n * 10))
	CRASH_MODE=$mode
	step "[$n] crash point $point (skip $skip), $mode job, $trigger: the daemon dies"
	crash_reset
	if [ "$trigger" = bigcopy ]; then
		head -c 272M /dev/urandom >"$TEST_SRC/a.img"
	fi
	crash_mount_armed "$point" "$skip"
	crash_writer "$seed"
	case $trigger in
	migrate)
		crash_migrate >/dev/null 2>&1 && fail "migrate succeeded although the daemon was to die in it"
		;;
	run|bigcopy)
		# the first write routed through the delta store may come before
		# migrate's reply, and a crash point on a write (wal-appended,
		# skip 0) kills the daemon with the reply unsent: the job is
		# recorded by then, so the restart must find it migrating alike
		if ! crash_migrate >"$TEST_DIR/migrate.out" 2>&1; then
			wait_until 30 daemon_dead ||
				fail "migrate failed and the daemon lives: $(cat "$TEST_DIR/migrate.out")"
		fi
		;;
	cutover)
		crash_migrate >/dev/null
		ctl wait --timeout 120 >/dev/null
		ctl cutover --timeout 60 >/dev/null 2>&1 && fail "cutover succeeded although the daemon was to die in it"
		;;
	abort)
		crash_migrate >/dev/null
		ctl wait --timeout 120 >/dev/null
		ctl abort >/dev/null 2>&1 && fail "abort succeeded although the daemon was to die in it"
		;;
	abortcopy)
		crash_migrate --rate 4M >/dev/null
		wait_until 60 eval '[ "$(file_field a.img bytes_copied)" -gt 0 ]' || fail "the copy did not start"
		assert_eq copying "$(file_state a.img)" "state of a.img before the abort"
		ctl abort >/dev/null 2>&1 && fail "abort succeeded although the daemon was to die in it"
		;;
	*) fail "unknown trigger '$trigger'" ;;
	esac
	crash_wait_dead 120
	grep -q "crash point '$point' reached" "$TEST_DIR/relocfs.log" ||
		fail "the daemon died, but not at crash point '$point'"
	crash_reap

	step "[$n] $point: restarted, every flushed write is served; the job is $want"
	crash_restart
	crash_expect "$want"

	step "[$n] $point: finish the job under a new writer; the backend holds exactly what it wrote"
	crash_complete "$want" $((seed + 1))
done 3<<<"$CASES_TABLE"
[ "$n" -gt 0 ] || fail "no case selected"
say "  $CASES crash case(s) passed"
test_done
