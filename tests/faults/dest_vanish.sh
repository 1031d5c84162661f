#!/bin/bash
test_description='the DEST filesystem is lazily unmounted in the middle of the copy (umount -l): the migration must not cut over to the empty directory left at the DEST path; it fails with an error in status, the writer keeps working, abort works, and a retry to another DEST cuts over to exactly what the writer wrote'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_faults.sh"
require_daemon

step 'DEST is an ext4 on a loop device; a writer works on two images in the mount'
loop_fs 96M "$TEST_DST"
relocfs_mount
fault_writer 821

step 'migrate slowly; umount -l DEST while the base is copied'
ctl migrate --to "$TEST_DST" --rate 2M >/dev/null
wait_until 60 eval '[ "$(file_field a.img bytes_copied)" -gt 0 ]' || fail "the copy did not start"
assert_eq copying "$(file_state a.img)" "state of a.img before the fault"
umount -l "$TEST_DST"
[ -z "$(ls -A "$TEST_DST")" ] || fail "the DEST path is not an empty directory after umount -l"

step 'the migration fails, or at the latest the cutover is refused: the DEST path no longer leads to the copy'
# a hang guard: the copy either fails or finishes into the detached filesystem
wait_until 120 state_is a.img failed ready || fail "a.img neither failed nor got ready; status: $(status_json)"
say "  a.img: $(file_state a.img): $(file_field a.img error)"
if ctl cutover --timeout 30 >"$TEST_DIR/cutover.out" 2>&1; then
	fail "cutover switched to '$TEST_DST', which no longer leads to the copied files: \
$(cat "$TEST_DIR/cutover.out"); the mount now shows '$(ls -A "$TEST_MNT" | tr '\n' ' ')' \
but '$TEST_DST' holds '$(ls -A "$TEST_DST" | tr '\n' ' ')'; after a restart the state record's \
path is served and the files are gone"
fi
say "  cutover: $(cat "$TEST_DIR/cutover.out")"
err=$(file_field a.img error)
[ -n "$err" ] && [ "$err" != null ] || fail "cutover was refused, but status shows no error: $(status_json)"

step 'the writer keeps working; abort works'
writer_flushes
ctl abort >/dev/null
writer_flushes

step 'a retry to another DEST cuts over under the writer; the mount and that DEST hold exactly what it wrote'
retry_elsewhere
test_done
