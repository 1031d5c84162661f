#!/bin/bash
test_description='fsync, fdatasync, fsyncdir and syncfs through the mount succeed and data is on the backing file afterwards'
. "$(dirname "$0")/../lib.sh"
require_tool fsop
FSOP=$TOOLS/fsop
relocfs_mount

step 'fsync and fdatasync of a written file succeed'
head -c 300000 /dev/urandom >"$TEST_DIR/data"
cp "$TEST_DIR/data" "$TEST_MNT/file"
assert_eq ok "$("$FSOP" fsync "$TEST_MNT/file")" "fsync"
assert_eq ok "$("$FSOP" fdatasync "$TEST_MNT/file")" "fdatasync"
cmp "$TEST_DIR/data" "$TEST_SRC/file" || fail "backing file differs after fsync"

step 'fsync of a directory (fsyncdir) succeeds, at the root and below'
mkdir "$TEST_MNT/dir"
echo x >"$TEST_MNT/dir/entry"
assert_eq ok "$("$FSOP" fsyncdir "$TEST_MNT/dir")" "fsync of dir"
assert_eq ok "$("$FSOP" fsyncdir "$TEST_MNT")" "fsync of the root"

step 'syncfs and sync -f of the mount succeed'
assert_eq ok "$("$FSOP" syncfs "$TEST_MNT/file")" "syncfs"
sync -f "$TEST_MNT/file"
sync -d "$TEST_MNT/file"

step 'dd conv=fsync and conv=fdatasync succeed and the data is on the backing file'
dd if="$TEST_DIR/data" of="$TEST_MNT/dd1" bs=64k conv=fsync status=none
dd if="$TEST_DIR/data" of="$TEST_MNT/dd2" bs=64k conv=fdatasync status=none
cmp "$TEST_DIR/data" "$TEST_SRC/dd1" || fail "dd1 differs"
cmp "$TEST_DIR/data" "$TEST_SRC/dd2" || fail "dd2 differs"

step 'fsync of a file opened read-only succeeds'
exec 3<"$TEST_MNT/file"
assert_eq ok "$("$FSOP" fsync /proc/self/fd/3)" "fsync via a read-only descriptor's path"
exec 3<&-

step 'fsync and fdatasync in a loop of 200 writes (fsync is not turned off after a first ENOSYS)'
for i in $(seq 1 200); do
	"$FSOP" pwrite "$TEST_MNT/loop" $((i * 100)) "write-$i" >/dev/null
	r=$("$FSOP" fsync "$TEST_MNT/loop")
	[ "$r" = ok ] || fail "fsync $i: $r"
done
assert_eq "write-200" "$(dd if="$TEST_SRC/loop" bs=1 skip=20000 count=9 status=none)" "last write on the backing file"

relocfs_umount
test_done
