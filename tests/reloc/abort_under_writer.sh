#!/bin/bash
test_description='abort a migration while a writer runs, once after wait and once in the middle of the copy: the source and the live view hold exactly what the writer wrote, DEST is left empty'
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib_reloc.sh"
relocfs_mount

# dest_is_empty: nothing left in DEST, not even hidden files
dest_is_empty() {
	[ -z "$(find "$TEST_DST" -mindepth 1 -print -quit)" ]
}

# after_abort WHAT: the checks that follow every abort
after_abort() {
	assert_eq "$TEST_SRC" "$(status_field source)" "status source after abort ($1)"
	for f in disk.img small.img; do
		backend=$(file_field "$f" backend)
		state=$(file_state "$f")
		[ -z "$backend" ] || assert_eq "$TEST_SRC" "$backend" "backend of '$f' after abort ($1)"
		[ "$state" != failed ] || fail "'$f' failed: $(file_field "$f" error)"
	done
	dest_is_empty || fail "DEST is not empty after abort ($1): $(cd "$TEST_DST" && find . -mindepth 1)"
}

step 'the writer creates a sparse 256 MiB image with data islands and a 4 MiB image, and keeps writing'
writer_start --seed 202 --direct --flush-every 32 --delay-us 1000 \
	--size 256M --file "$TEST_MNT/disk.img" --size 4M --file "$TEST_MNT/small.img"

step 'migrate, wait until ready, abort: the writer never notices'
ctl migrate --to "$TEST_DST" --rate 32M >/dev/null
ctl wait --timeout 120 >/dev/null
ctl abort >/dev/null
writer_running || fail "the writer stopped during the abort: $(cat "$TEST_DIR/writer.log")"
after_abort "after wait"

step 'migrate again (DEST is empty again), abort in the middle of the copy'
ctl migrate --to "$TEST_DST" --rate 4M >/dev/null
wait_until 60 eval '[ "$(file_field disk.img bytes_copied)" -gt 0 ]' || fail "copy did not start"
assert_eq copying "$(file_state disk.img)" "state of disk.img before the abort"
ctl abort >/dev/null
writer_running || fail "the writer stopped during the abort: $(cat "$TEST_DIR/writer.log")"
after_abort "during the copy"

step 'the writer keeps writing to the source, then stops cleanly'
sleep 1
writer_stop 0

step 'the live view and the source hold exactly what the writer wrote'
check_final "$TEST_MNT" disk.img small.img
check_final "$TEST_SRC" disk.img small.img
dest_is_empty || fail "DEST is not empty at the end: $(cd "$TEST_DST" && find . -mindepth 1)"

step 'a restart with the same arguments serves the source with the same content'
relocfs_umount
relocfs_mount
assert_eq "$TEST_SRC" "$(status_field source)" "status source after restart"
check_final "$TEST_MNT" disk.img small.img

step 'migrate only small.img and a nested file (a files job), abort: DEST is empty again'
mkdir -p "$TEST_MNT/sub/dir"
head -c 300000 /dev/urandom >"$TEST_MNT/sub/dir/static.img"
sum=$(md5sum <"$TEST_MNT/sub/dir/static.img")
ctl migrate --to "$TEST_DST" small.img sub/dir/static.img >/dev/null
ctl abort >/dev/null
assert_eq "$sum" "$(md5sum <"$TEST_MNT/sub/dir/static.img")" "sub/dir/static.img after the abort"
after_abort "a files job"
relocfs_umount
test_done
