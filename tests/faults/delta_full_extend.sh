#!/bin/bash
test_description='after the delta store filled up and writes go to the source in place: a file truncated and then written past its end reads zeros in the gap, as any file does'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_faults.sh"
require_daemon

step 'a 4 MiB image of random data; migrate it with the delta store on a 32 MiB ext4; fill the delta store'
head -c 4M /dev/urandom >"$TEST_SRC/disk.img"
loop_fs 32M "$TEST_DIR/delta"
relocfs_mount
ctl migrate --to "$TEST_DST" --delta-dir "$TEST_DIR/delta" disk.img >/dev/null
dd if=/dev/zero of="$TEST_DIR/delta/filler" bs=1M status=none 2>/dev/null || true
dd if=/dev/zero of="$TEST_DIR/delta/filler2" bs=4096 status=none 2>/dev/null || true
df -k "$TEST_DIR/delta" | tail -n 1 | sed "s/^/  delta store: /"

step 'a write that the delta cannot take goes to the source; the migration fails'
dd if=/dev/urandom of="$TEST_MNT/disk.img" bs=4096 count=1 conv=notrunc,fsync status=none
assert_eq failed "$(file_state disk.img)" "state after the delta refused a write"

step 'truncate to 2 MiB, write 4 KiB at 3 MiB: bytes 2 MiB to 3 MiB read as zeros'
truncate -s 2M "$TEST_MNT/disk.img"
dd if=/dev/urandom of="$TEST_MNT/disk.img" bs=4096 seek=768 count=1 conv=notrunc,fsync status=none
assert_eq $((3 * 1048576 + 4096)) "$(stat -c %s "$TEST_MNT/disk.img")" "size"
head -c 1M /dev/zero >"$TEST_DIR/zero1m"
cmp "$TEST_DIR/zero1m" <(dd if="$TEST_MNT/disk.img" bs=1M skip=2 count=1 iflag=direct status=none) ||
	fail "the gap between the truncated end and the new write does not read as zeros"

step 'after abort the source reads the same'
ctl abort >/dev/null
cmp "$TEST_DIR/zero1m" <(dd if="$TEST_SRC/disk.img" bs=1M skip=2 count=1 status=none) ||
	fail "the gap in the source is not zeros after the abort"
relocfs_umount
test_done
