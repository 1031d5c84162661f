#!/bin/bash
test_description='DEST starts failing every request with EIO in the middle of the copy (XFS shut down): the migration fails with an error in status, the writer keeps working and flushing through the mount, a cutover is refused, abort works, and a retry to another DEST cuts over to exactly what the writer wrote'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_faults.sh"
require_daemon

step 'DEST is an XFS on a loop device; a writer works on two images in the mount'
xfs_fs "$TEST_DST"
relocfs_mount
fault_writer 811

step 'migrate slowly; shut DEST down while the base is copied'
ctl migrate --to "$TEST_DST" --rate 2M >/dev/null
wait_until 60 eval '[ "$(file_field a.img bytes_copied)" -gt 0 ]' || fail "the copy did not start"
assert_eq copying "$(file_state a.img)" "state of a.img before the fault"
xfs_shutdown "$TEST_DST"

step 'the migration goes to state failed, with the error in status --json'
wait_state 60 a.img failed
err=$(file_field a.img error)
say "  a.img: $err"
[ -n "$err" ] && [ "$err" != null ] || fail "no error for a.img in status: $(status_json)"
case $err in *"Input/output error"*) ;; *) fail "the error does not name the I/O error: $err" ;; esac
say "  b.img: $(file_state b.img): $(file_field b.img error)"

step 'the writer keeps working and flushing; a cutover is refused'
writer_flushes
expect_fail ctl cutover --timeout 10
say "  cutover: $ERR_OUT"
writer_flushes

step 'abort works; the writer keeps working'
ctl abort >/dev/null
assert_eq "" "$(status_json | jq -r '.destination // ""')" "no job after the abort"
writer_flushes

step 'a retry to another DEST cuts over under the writer; the mount and that DEST hold exactly what it wrote'
retry_elsewhere
test_done
