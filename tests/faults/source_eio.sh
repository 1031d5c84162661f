#!/bin/bash
test_description='the source starts failing every read and write with EIO (XFS shut down) in the middle of the copy: the migration fails with an error naming the source, the daemon never serves wrong data (reads of blocks only the source holds fail), abort says to retry; once the source is back (remounted), a restart with the same arguments serves every flushed write and abort brings them all to the source'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_faults.sh"
require_daemon

step 'SRC is an XFS on a loop device; a writer works on two images; migrate slowly, the delta store elsewhere'
xfs_fs "$TEST_SRC"
relocfs_mount
fault_writer 851
writer_flushes
mkdir "$TEST_DIR/delta"
ctl migrate --to "$TEST_DST" --rate 2M --delta-dir "$TEST_DIR/delta" >/dev/null
wait_until 60 eval '[ "$(file_field a.img bytes_copied)" -gt 0 ]' || fail "the copy did not start"
writer_flushes

step 'shut the source down: the migration fails with an error naming the source'
xfs_shutdown "$TEST_SRC"
wait_some_failed
case "$(file_field a.img error) $(file_field b.img error)" in
*source*) ;;
*) fail "no error names the source: $(status_json)" ;;
esac

step 'the writer either keeps working or stops on EIO; it never reads wrong data'
wait_until 10 eval '! writer_running' || true
writer_stop_after_eio

step 'abort while the source is down: it fails and says to retry (the delta cannot go back yet)'
if ctl abort >"$TEST_DIR/abort.out" 2>&1; then
	fail "abort succeeded although the source cannot be written: $(cat "$TEST_DIR/abort.out")"
fi
say "  abort: $(cat "$TEST_DIR/abort.out")"
case $(cat "$TEST_DIR/abort.out") in *retry*) ;; *) fail "a failed abort does not say what to do" ;; esac

step 'unmount; bring the source back; restart with the same arguments: every flushed write is served'
relocfs_umount
umount "$TEST_SRC"
mount -t xfs "${LOOP_DEVS[0]}" "$TEST_SRC" || fail "cannot mount the source again"
relocfs_mount
check_acked "$TEST_MNT" $FAULT_FILES

step 'abort (the restart finishes the recorded abort by itself): the source holds every flushed write; DEST and the delta store are emptied'
if [ -n "$(status_json | jq -r '.destination // ""')" ]; then
	ctl abort >/dev/null
else
	say "  the restarted daemon finished the abort that was recorded"
fi
assert_eq "" "$(status_json | jq -r '.destination // ""')" "no job after the abort"
check_acked "$TEST_MNT" $FAULT_FILES
relocfs_umount
check_acked "$TEST_SRC" $FAULT_FILES
assert_eq "" "$(ls -A "$TEST_DIR/delta")" "the delta store after the abort"
assert_eq "" "$(ls -A "$TEST_DST")" "DEST after the abort"
test_done
