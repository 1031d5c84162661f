#!/bin/bash
test_description='copy_file_range and cp --reflink=never inside the mount produce exact copies on the backing directory'
. "$(dirname "$0")/../lib.sh"
require_tool fsop
FSOP=$TOOLS/fsop

head -c $((20 << 20)) /dev/urandom >"$TEST_SRC/src"
head -c 12345 /dev/urandom >"$TEST_SRC/small"
relocfs_mount

step 'copy_file_range of a whole 20 MiB file inside the mount'
assert_eq ok "$("$FSOP" copy_file_range "$TEST_MNT/src" "$TEST_MNT/dst")" "copy_file_range"
cmp "$TEST_SRC/src" "$TEST_SRC/dst" || fail "backing copy differs"
cmp "$TEST_SRC/src" "$TEST_MNT/dst" || fail "copy read through the mount differs"

step 'copy_file_range with unaligned offsets into the middle of an existing file'
cp "$TEST_SRC/src" "$TEST_DIR/expect"
dd if="$TEST_SRC/small" of="$TEST_DIR/expect" bs=1 skip=3 seek=1000001 count=9000 conv=notrunc status=none
assert_eq ok "$("$FSOP" copy_file_range "$TEST_MNT/small" "$TEST_MNT/dst" 3 1000001 9000)" "copy_file_range at offsets"
cmp "$TEST_DIR/expect" "$TEST_SRC/dst" || fail "backing file differs after a ranged copy"
cmp "$TEST_DIR/expect" "$TEST_MNT/dst" || fail "file through the mount differs after a ranged copy"

step 'copy_file_range past EOF of the source copies only what exists'
assert_eq ok "$("$FSOP" copy_file_range "$TEST_MNT/small" "$TEST_MNT/tail" 12000 0 100000)" "copy_file_range past EOF"
assert_eq 345 "$(stat -c %s "$TEST_SRC/tail")" "size of the copy of the last 345 bytes"

step 'copy_file_range onto itself, overlapping, fails as in a plain directory'
cp "$TEST_SRC/small" "$TEST_REF/small"
in_both "$FSOP" copy_file_range small small 0 100 1000

step 'cp --reflink=never inside the mount'
cp --reflink=never "$TEST_MNT/src" "$TEST_MNT/cp-copy"
cmp "$TEST_SRC/src" "$TEST_SRC/cp-copy" || fail "cp --reflink=never copy differs on the backing directory"

step 'cp of a sparse file inside the mount keeps data and size'
truncate -s 64M "$TEST_MNT/sp"
dd if=/dev/urandom of="$TEST_MNT/sp" bs=1M count=1 seek=40 conv=notrunc status=none
cp --reflink=never "$TEST_MNT/sp" "$TEST_MNT/sp-copy"
cmp "$TEST_SRC/sp" "$TEST_SRC/sp-copy" || fail "sparse copy differs"

step 'the copy written through the mount survives unmount and remount'
relocfs_umount
relocfs_mount
cmp "$TEST_DIR/expect" "$TEST_MNT/dst" || fail "dst differs after remount"

relocfs_umount
test_done
