#!/bin/bash
test_description='the delta store fills up under a writer: writes and flushes keep succeeding (the daemon writes the source in place and fails the migration), status says failed with an error, a cutover is refused, abort restores everything, and the source holds exactly what the writer wrote'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_faults.sh"
require_daemon

# a migrate wants each file's journal and log ring (about 10 MiB for these
# two) and 8 MiB more free: a 32 MiB ext4 (about 23 MiB free) leaves about
# 13 MiB for the data the writer spreads over 36 MiB (an 8 MiB store
# refuses the migrate outright)
step 'the delta store is a 32 MiB ext4 on a loop device; a writer works on two images'
loop_fs 32M "$TEST_DIR/delta"
relocfs_mount
fault_writer 831

step 'migrate with --delta-dir on it; the writer writes more than it holds'
ctl migrate --to "$TEST_DST" --delta-dir "$TEST_DIR/delta" >/dev/null
wait_until 300 eval 'state_is a.img failed || state_is b.img failed' ||
	fail "no file failed; status: $(status_json)"
df -k "$TEST_DIR/delta" | tail -n 1 | sed 's/^/  delta store: /'
failed=0
for f in $FAULT_FILES; do
	s=$(file_state "$f")
	e=$(file_field "$f" error)
	say "  $f: $s: $e"
	if [ "$s" = failed ]; then
		failed=$((failed + 1))
		case $e in *"No space left"*) ;; *) fail "the error of '$f' does not name the full delta store: $e" ;; esac
	fi
done

step 'the writer keeps writing and flushing; a cutover is refused'
writer_flushes
writer_flushes
expect_fail ctl cutover --timeout 10
say "  cutover: $ERR_OUT"
writer_flushes

step 'abort brings everything back to the source under the writer'
ctl abort >/dev/null
assert_eq "" "$(status_json | jq -r '.destination // ""')" "no job after the abort"
writer_flushes
writer_stop 0
check_final "$TEST_MNT" $FAULT_FILES
relocfs_umount

step 'the source holds exactly what the writer wrote; DEST and the delta store are empty'
check_final "$TEST_SRC" $FAULT_FILES
assert_eq "" "$(ls -A "$TEST_DST")" "DEST after the abort"
assert_eq "" "$(ls -A "$TEST_DIR/delta")" "the delta store after the abort"
test_done
