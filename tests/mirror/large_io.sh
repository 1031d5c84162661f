#!/bin/bash
test_description='1 MiB requests: dd bs=1M writes and reads through the mount, buffered and with fsync, match the backing file'
. "$(dirname "$0")/../lib.sh"

head -c $((64 << 20)) /dev/urandom >"$TEST_DIR/ref64"
relocfs_mount

step 'dd bs=1M count=64 into the mount writes the same bytes to the backing file'
dd if="$TEST_DIR/ref64" of="$TEST_MNT/big" bs=1M status=none
cmp "$TEST_DIR/ref64" "$TEST_SRC/big" || fail "backing file differs after dd bs=1M"

step 'dd bs=1M reads the file back unchanged'
dd if="$TEST_MNT/big" bs=1M status=none | cmp - "$TEST_DIR/ref64" || fail "read-back with bs=1M differs"

step 'dd bs=4M (requests larger than max_write) with conv=fsync'
dd if="$TEST_DIR/ref64" of="$TEST_MNT/big4" bs=4M conv=fsync status=none
cmp "$TEST_DIR/ref64" "$TEST_SRC/big4" || fail "backing file differs after dd bs=4M"

step 'unaligned 1 MiB requests: dd bs=1M at a 1-byte offset'
dd if="$TEST_DIR/ref64" of="$TEST_MNT/odd" bs=1M count=8 status=none
dd if="$TEST_DIR/ref64" of="$TEST_MNT/odd" bs=1048577 count=3 seek=1 oflag=seek_bytes conv=notrunc status=none
cp "$TEST_DIR/ref64" "$TEST_DIR/odd"
truncate -s $((8 << 20)) "$TEST_DIR/odd"
dd if="$TEST_DIR/ref64" of="$TEST_DIR/odd" bs=1048577 count=3 seek=1 oflag=seek_bytes conv=notrunc status=none
cmp "$TEST_DIR/odd" "$TEST_SRC/odd" || fail "backing file differs after unaligned 1 MiB writes"
cmp "$TEST_DIR/odd" "$TEST_MNT/odd" || fail "read-back differs after unaligned 1 MiB writes"

step 'overwrite the middle with 1 MiB blocks and read back in 1 MiB blocks at an offset'
head -c $((5 << 20)) /dev/urandom >"$TEST_DIR/patch"
dd if="$TEST_DIR/patch" of="$TEST_MNT/big" bs=1M seek=30 conv=notrunc status=none
dd if="$TEST_DIR/patch" of="$TEST_DIR/ref64" bs=1M seek=30 conv=notrunc status=none
cmp "$TEST_DIR/ref64" "$TEST_SRC/big" || fail "backing file differs after overwrite"
dd if="$TEST_MNT/big" bs=1M skip=29 count=7 status=none | cmp - <(dd if="$TEST_DIR/ref64" bs=1M skip=29 count=7 status=none) ||
	fail "1 MiB reads at an offset differ"

step 'O_DIRECT: 1 MiB requests (more pages than a virtio disk takes in one: bounced) and 768 KiB ones, and a read past the end'
# a file whose size is not a multiple of the requests: the last direct read
# comes back short through the bounce buffer
head -c $(((9 << 20) + 12288)) /dev/urandom >"$TEST_DIR/dref"
dd if="$TEST_DIR/dref" of="$TEST_MNT/direct" bs=1M oflag=direct status=none 2>/dev/null ||
	dd if="$TEST_DIR/dref" of="$TEST_MNT/direct" bs=1M status=none
cmp "$TEST_DIR/dref" "$TEST_SRC/direct" || fail "backing file differs after O_DIRECT 1 MiB writes"
dd if="$TEST_DIR/dref" of="$TEST_MNT/direct" bs=768K count=11 oflag=direct conv=notrunc status=none
cmp "$TEST_DIR/dref" "$TEST_SRC/direct" || fail "backing file differs after O_DIRECT 768 KiB writes"
dd if="$TEST_MNT/direct" bs=1M iflag=direct status=none | cmp - "$TEST_DIR/dref" ||
	fail "O_DIRECT 1 MiB reads (the last one short) differ"
dd if="$TEST_MNT/direct" bs=768K iflag=direct status=none | cmp - "$TEST_DIR/dref" ||
	fail "O_DIRECT 768 KiB reads differ"
say "    the backing disk takes $(cat "/sys/dev/block/$(stat -c '%Hd:%Ld' "$TEST_SRC")/queue/max_segments" 2>/dev/null ||
	cat "/sys/dev/block/$(stat -c '%Hd:%Ld' "$TEST_SRC")/../queue/max_segments" 2>/dev/null || echo '?') pieces a request"

step 'after unmount and remount the file still reads the same (nothing left in caches only)'
relocfs_umount
relocfs_mount
cmp "$TEST_DIR/ref64" "$TEST_MNT/big" || fail "file differs after remount"

relocfs_umount
test_done
