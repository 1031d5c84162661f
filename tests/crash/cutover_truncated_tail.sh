#!/bin/bash
test_description='a block merged into DEST, then the file truncated inside that block and extended again: the bytes past the old truncation point read as zeros, before and after the cutover (found by fsverify_cycles)'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
require_daemon

# zeros_at FILE OFF LEN: LEN bytes at OFF read as zeros (O_DIRECT, whole blocks)
zeros_at() {
	[ "$(dd if="$1" bs=4096 skip=$(($2 / 4096)) count=1 iflag=direct status=none |
		tail -c +$(($2 % 4096 + 1)) | head -c "$3" | tr -d '\0' | wc -c)" = 0 ]
}

step 'a 1 MiB image of random data; migrate it; wait until nothing is left to merge'
head -c 1M /dev/urandom >"$TEST_SRC/disk.img"
relocfs_mount
ctl migrate --to "$TEST_DST" disk.img >/dev/null
ctl wait --timeout 60 >/dev/null
wait_until 60 eval '[ "$(file_field disk.img unmerged_bytes)" = 0 ]' || fail "the copy did not finish"

step 'write block 2 and let the copier merge it into DEST'
dd if=/dev/urandom of="$TEST_MNT/disk.img" bs=4096 seek=2 count=1 conv=notrunc status=none
wait_until 60 eval '[ "$(file_field disk.img unmerged_bytes)" = 0 ]' || fail "the block was not merged"

step 'truncate to 100 bytes into block 2, then back to 1 MiB: the rest of block 2 reads as zeros'
truncate -s $((8192 + 100)) "$TEST_MNT/disk.img"
truncate -s 1M "$TEST_MNT/disk.img"
zeros_at "$TEST_MNT/disk.img" $((8192 + 100)) 3996 || fail "bytes past the truncation point are not zeros before the cutover"

step 'cut over: the same bytes still read as zeros, in the mount and in DEST'
ctl cutover --timeout 60 >/dev/null
zeros_at "$TEST_MNT/disk.img" $((8192 + 100)) 3996 || fail "bytes past the truncation point are not zeros after the cutover (mount)"
relocfs_umount
zeros_at "$TEST_DST/disk.img" $((8192 + 100)) 3996 || fail "bytes past the truncation point are not zeros in DEST"
test_done
