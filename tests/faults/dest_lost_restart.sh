#!/bin/bash
test_description='DEST fails (XFS shut down) in the middle of the copy and relocfs is killed; a restart with the same arguments while DEST is still down serves the files from the source with every flushed write, rolls the migration back and says what it left in DEST'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_faults.sh"
require_daemon

step 'DEST is an XFS on a loop device; a writer works on two images; migrate slowly'
xfs_fs "$TEST_DST"
relocfs_mount
fault_writer 881
ctl migrate --to "$TEST_DST" --rate 2M >/dev/null
wait_until 60 eval '[ "$(file_field a.img bytes_copied)" -gt 0 ]' || fail "the copy did not start"
writer_flushes

step 'shut DEST down; kill -9 relocfs while the writer runs'
xfs_shutdown "$TEST_DST"
writer_flushes
kill_daemon
writer_stop_after_eio

step 'restart with the same arguments, DEST still down: it mounts, rolls back and serves the source'
relocfs_mount
assert_eq "" "$(status_json | jq -r '.destination // ""')" "no job after the restart"
grep -E 'is lost|cannot open|left there' "$TEST_DIR/relocfs.log" | sed 's/^/  log: /'
grep -q 'rolling the migration back to the source' "$TEST_DIR/relocfs.log" ||
	fail "the daemon's log does not say that it rolled back"

step 'every write the writer saw flushed is served, and is in the source after unmounting'
check_acked "$TEST_MNT" $FAULT_FILES
relocfs_umount
check_acked "$TEST_SRC" $FAULT_FILES
test_done
