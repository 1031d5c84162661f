#!/bin/bash
test_description='a destination too small: migrate refuses up front with a capacity message; a destination that fills up during the copy fails the migration in status while the writer keeps working, and abort brings everything back'
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib_reloc.sh"
require_root

step 'DEST is a 32 MiB ext4 on a loop device'
loop_fs 32M "$TEST_DST"
free_bytes=$(($(stat -f -c '%a * %S' "$TEST_DST")))
say "  $free_bytes bytes free in DEST"

step 'an image with more data than DEST can hold: migrate fails up front, with one line naming the space'
head -c 48M /dev/urandom >"$TEST_SRC/big.img"
head -c 20M /dev/urandom >"$TEST_SRC/disk.img"
relocfs_mount
expect_fail ctl migrate --to "$TEST_DST" big.img
assert_eq 1 "$(printf '%s\n' "$ERR_OUT" | wc -l)" "lines on stderr: $ERR_OUT"
case $ERR_OUT in *free*|*space*|*capacity*) ;; *) fail "no capacity message: $ERR_OUT" ;; esac
[ -z "$(find "$TEST_DST" -mindepth 1 -print -quit)" ] || fail "DEST is not empty after the refusal"
assert_eq "" "$(status_json | jq -r '.files[] | select(.state != "idle" and .state != "done") | .path')" \
	"nothing migrates after the refusal"

step 'a 20 MiB image fits; a writer runs on it; migrate slowly'
writer_start --seed 606 --direct --flush-every 32 --delay-us 2000 --size 1 --file "$TEST_MNT/disk.img"
ctl migrate --to "$TEST_DST" --rate 2M disk.img >/dev/null
wait_until 60 eval '[ "$(file_field disk.img bytes_copied)" -gt 0 ]' || fail "copy did not start"

step 'fill DEST behind the daemon: the migration fails with an error in status'
dd if=/dev/zero of="$TEST_DST/filler" bs=1M status=none 2>/dev/null || true
wait_state 120 disk.img failed
err=$(file_field disk.img error)
say "  error: $err"
[ -n "$err" ] && [ "$err" != null ] || fail "no error in status for the failed file"
assert_eq "failed 'disk.img': $err" "$(status_json | jq -r '.jobs[0] | "\(.state) \(.error)"')" \
	"the job's state and error"
expect_fail ctl wait --timeout 30
case $ERR_OUT in *disk.img*) ;; *) fail "wait does not name the failed file: $ERR_OUT" ;; esac

step 'the writer keeps working; a cutover is refused'
writer_running || fail "the writer stopped: $(cat "$TEST_DIR/writer.log")"
expect_fail ctl cutover --timeout 10
sleep 1
writer_running || fail "the writer stopped: $(cat "$TEST_DIR/writer.log")"

step 'abort brings everything back to the source; DEST holds only the filler'
ctl abort >/dev/null
sleep 0.5
writer_stop 0
check_final "$TEST_MNT" disk.img
check_final "$TEST_SRC" disk.img
assert_eq "filler" "$(ls -A "$TEST_DST")" "DEST after the abort"
relocfs_umount
test_done
