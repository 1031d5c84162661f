#!/bin/bash
test_description='with the writeback cache, a file on ext4 read and written through the mount is cached on the mount only: its backing file keeps at most its last partial page in the page cache, and holds every byte written once it is flushed; the mount reads ahead as far as the source disk'
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../reloc/lib_reloc.sh"
require_cmd fincore xfs_io cmp

# pages FILE: how many pages of FILE are in the page cache
pages() {
	fincore -n -o PAGES "$1" | tr -d ' '
}

# the source on ext4 whatever the test directory is on
loop_fs 256M "$TEST_DIR/ext4"
TEST_SRC=$TEST_DIR/ext4
SIZE=$((16 << 20))
head -c "$SIZE" /dev/urandom >"$TEST_SRC/disk.img"
printf 'end' >>"$TEST_SRC/disk.img"	# a last, partial page
cp "$TEST_SRC/disk.img" "$TEST_DIR/expect"
xfs_io -c fsync -c "fadvise -d 0 $((SIZE + 4096))" "$TEST_SRC/disk.img"
assert_eq 0 "$(pages "$TEST_SRC/disk.img")" "pages of the backing file cached before the test"
# the loop device reads 4 MiB ahead: the mount must take that over
dev=${LOOP_DEVS[${#LOOP_DEVS[@]} - 1]}
echo 4096 >"/sys/block/${dev#/dev/}/queue/read_ahead_kb"
relocfs_mount

step 'the mount reads ahead as far as the source disk does (4 MiB)'
assert_eq 4096 "$(cat "/sys/class/bdi/$(mountpoint -d "$TEST_MNT")/read_ahead_kb")" \
	"the mount's read_ahead_kb"

step 'read 16 MiB through the mount: its pages are cached on the mount, not in the backing file'
cmp "$TEST_DIR/expect" "$TEST_MNT/disk.img" || fail "the file reads wrong through the mount"
mnt=$(pages "$TEST_MNT/disk.img")
[ "$mnt" -ge $((SIZE / 4096)) ] || fail "the mount caches $mnt pages of $((SIZE / 4096 + 1))"
back=$(pages "$TEST_SRC/disk.img")
[ "$back" -le 1 ] || fail "the backing file has $back pages in the page cache as well"
say "  cached: $mnt pages on the mount, $back of the backing file"

step 'buffered writes through the mount, then fdatasync: in the backing file, not in its page cache'
dd if=/dev/urandom of="$TEST_DIR/new" bs=64K count=64 status=none
dd if="$TEST_DIR/new" of="$TEST_MNT/disk.img" bs=64K seek=16 conv=notrunc status=none
dd if="$TEST_DIR/new" of="$TEST_DIR/expect" bs=64K seek=16 conv=notrunc status=none
# 100 bytes past the end: the file's new last page is partial
head -c 100 /dev/urandom | tee -a "$TEST_DIR/expect" >>"$TEST_MNT/disk.img"
xfs_io -c fdatasync "$TEST_MNT/disk.img"
back=$(pages "$TEST_SRC/disk.img")
[ "$back" -le 2 ] || fail "the backing file has $back pages in the page cache after the writes"
say "  cached: $back page(s) of the backing file"
dd if="$TEST_SRC/disk.img" of="$TEST_DIR/backing" bs=1M iflag=direct status=none
cmp "$TEST_DIR/expect" "$TEST_DIR/backing" || fail "the backing file, read direct, is not what was written"

step 'unmounted and read from the disk, the file is what was written'
relocfs_umount
xfs_io -c "fadvise -d 0 $((SIZE + 8192))" "$TEST_SRC/disk.img"
cmp "$TEST_DIR/expect" "$TEST_SRC/disk.img" || fail "the backing file differs after the unmount"
test_done
