#!/bin/bash
test_description='fallocate through the mount in every mode the kernel forwards: 0, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE (with and without KEEP_SIZE)'
. "$(dirname "$0")/../lib.sh"
require_cmd fallocate

blocks() { stat -c %b "$1"; }
# the same operations in a plain directory and through the mount, then the
# sizes and contents must agree, and the backing file must be what the
# plain-directory file is
same_file() {
	assert_eq "$(stat -c %s "$TEST_REF/$1")" "$(stat -c %s "$TEST_MNT/$1")" "size of '$1' through the mount"
	assert_eq "$(stat -c %s "$TEST_REF/$1")" "$(stat -c %s "$TEST_SRC/$1")" "size of backing '$1'"
	cmp "$TEST_REF/$1" "$TEST_MNT/$1" || fail "'$1' through the mount differs from the plain-directory file"
	cmp "$TEST_REF/$1" "$TEST_SRC/$1" || fail "backing '$1' differs from the plain-directory file"
}
relocfs_mount

step 'mode 0: fallocate -l 4M on a new file sets the size and allocates blocks on the backing file'
in_both fallocate -l 4M f0
same_file f0
[ "$(blocks "$TEST_SRC/f0")" -ge 8192 ] || fail "backing f0 has $(blocks "$TEST_SRC/f0") blocks, want at least 8192 (4 MiB)"

step 'mode 0 past EOF of a file with data extends it and keeps the data'
head -c 10000 /dev/urandom >"$TEST_DIR/d"
cp "$TEST_DIR/d" "$TEST_REF/f1"; cp "$TEST_DIR/d" "$TEST_MNT/f1"
in_both fallocate -o 8192 -l 100000 f1
same_file f1

step 'KEEP_SIZE (-n) allocates beyond EOF without changing the size'
in_both fallocate -n -o 0 -l 2M f1
same_file f1
[ "$(blocks "$TEST_SRC/f1")" -ge 4096 ] || fail "backing f1 has $(blocks "$TEST_SRC/f1") blocks after fallocate -n -l 2M"

step 'PUNCH_HOLE (-p) zeroes the range, keeps the size and frees blocks on the backing file'
head -c $((4 << 20)) /dev/urandom >"$TEST_DIR/d4"
cp "$TEST_DIR/d4" "$TEST_REF/p"; cp "$TEST_DIR/d4" "$TEST_MNT/p"
before=$(blocks "$TEST_SRC/p")
in_both fallocate -p -o 1M -l 2M p
same_file p
after=$(blocks "$TEST_SRC/p")
[ "$after" -le $((before - 3000)) ] || fail "backing p had $before blocks, $after after punching 2 MiB"

step 'PUNCH_HOLE on unaligned ranges zeroes exactly those bytes'
in_both fallocate -p -o 1 -l 4094 p
in_both fallocate -p -o 3999999 -l 12345 p
in_both fallocate -p -o 4194000 -l 1000 p
same_file p

step 'ZERO_RANGE (-z) zeroes and may extend; with -n it keeps the size'
cp "$TEST_DIR/d" "$TEST_REF/z"; cp "$TEST_DIR/d" "$TEST_MNT/z"
in_both fallocate -z -o 100 -l 5000 z
same_file z
in_both fallocate -z -o 9000 -l 100000 z
same_file z
in_both fallocate -z -n -o 100000 -l 100000 z
same_file z
in_both fallocate -z -n -o 500000 -l 4096 z
same_file z

step 'the mount still answers fallocate after all of that (no ENOSYS turned it off)'
in_both fallocate -l 1M last
same_file last

step 'after a mode FUSE does not forward (collapse range) the mount still punches holes'
# the kernel refuses COLLAPSE_RANGE for FUSE itself; what matters is that the
# mount still works afterwards
fallocate -c -o 0 -l 4096 "$TEST_MNT/last" 2>/dev/null || true
in_both fallocate -p -o 0 -l 4096 last
same_file last

relocfs_umount
test_done
