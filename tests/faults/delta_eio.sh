#!/bin/bash
test_description='the delta store starts failing every request with EIO (XFS shut down) under a writer: the daemon never serves wrong data (the guest may see EIO: the blocks written since the migration began live only there), the migration fails with an error, unmounting works; once the delta store is back (remounted), a restart with the same arguments serves every flushed write and abort brings them all to the source'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_faults.sh"
require_daemon

step 'the delta store is an XFS on a loop device; a writer works on two images; migrate until ready'
xfs_fs "$TEST_DIR/delta"
relocfs_mount
fault_writer 841
ctl migrate --to "$TEST_DST" --delta-dir "$TEST_DIR/delta" >/dev/null
ctl wait --timeout 120 >/dev/null
writer_flushes

step 'shut the delta store down: the migration fails with an error in status'
xfs_shutdown "$TEST_DIR/delta"
wait_some_failed

step 'the writer either keeps working or stops on EIO; it never reads wrong data'
wait_until 10 eval '! writer_running' || true	# give it time to hit the dead store
writer_stop_after_eio

step 'abort while the delta store is down: it completes or fails with a message to retry'
if ctl abort >"$TEST_DIR/abort.out" 2>&1; then
	say "  abort: $(cat "$TEST_DIR/abort.out")"
	aborted=1
else
	say "  abort: $(cat "$TEST_DIR/abort.out")"
	case $(cat "$TEST_DIR/abort.out") in *retry*) ;; *) fail "a failed abort does not say what to do" ;; esac
	aborted=
fi

step 'unmount; bring the delta store back; restart with the same arguments: every flushed write is served'
relocfs_umount
umount "$TEST_DIR/delta"
mount -t xfs "${LOOP_DEVS[0]}" "$TEST_DIR/delta" || fail "cannot mount the delta store again"
relocfs_mount
check_acked "$TEST_MNT" $FAULT_FILES

step 'abort (again): the source holds every flushed write'
if [ -z "$aborted" ]; then
	ctl abort >/dev/null
fi
assert_eq "" "$(status_json | jq -r '.destination // ""')" "no job after the abort"
check_acked "$TEST_MNT" $FAULT_FILES
relocfs_umount
check_acked "$TEST_SRC" $FAULT_FILES
assert_eq "" "$(ls -A "$TEST_DIR/delta")" "the delta store after the abort"
test_done
