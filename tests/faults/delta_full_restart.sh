#!/bin/bash
test_description='the delta store filled up, a flushed write went to the source in place, then kill -9: after the restart the migration is still failed (the source is no longer a frozen base, only abort is left), and the flushed write is served and kept'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_faults.sh"
require_daemon

block_sum() {	# block_sum FILE BLOCK, read with O_DIRECT
	dd if="$1" bs=4096 skip="$2" count=1 iflag=direct status=none | md5sum | cut -d' ' -f1
}

step 'a 4 MiB image of random data; migrate it with the delta store on a 32 MiB ext4; wait until the base is copied; fill the delta store'
head -c 4M /dev/urandom >"$TEST_SRC/disk.img"
loop_fs 32M "$TEST_DIR/delta"
relocfs_mount
ctl migrate --to "$TEST_DST" --delta-dir "$TEST_DIR/delta" disk.img >/dev/null
ctl wait --timeout 60 >/dev/null
dd if=/dev/zero of="$TEST_DIR/delta/filler" bs=1M status=none 2>/dev/null || true
dd if=/dev/zero of="$TEST_DIR/delta/filler2" bs=4096 status=none 2>/dev/null || true

step 'a flushed write of block 5 goes to the source in place; the migration fails'
head -c 4096 /dev/urandom >"$TEST_DIR/new.blk"
new=$(block_sum "$TEST_DIR/new.blk" 0)
dd if="$TEST_DIR/new.blk" of="$TEST_MNT/disk.img" bs=4096 seek=5 conv=notrunc,fsync status=none
assert_eq failed "$(file_state disk.img)" "state after the delta refused a write"

step 'kill -9 and restart with the same arguments: block 5 is the flushed write; the migration is still failed'
kill_daemon
relocfs_mount
assert_eq "$new" "$(block_sum "$TEST_MNT/disk.img" 5)" "block 5 through the mount after the restart"
state=$(file_state disk.img)
if [ "$state" != failed ]; then
	msg="after the restart the migration is '$state' ($(file_field disk.img error)), not failed"
	if ctl wait --timeout 30 >/dev/null 2>&1 && ctl cutover --timeout 30 >/dev/null 2>&1; then
		if [ "$(block_sum "$TEST_DST/disk.img" 5)" = "$new" ]; then
			msg="$msg; a cutover was accepted"
		else
			msg="$msg; a cutover was accepted and lost the flushed write: block 5 in DEST is not what was written"
		fi
	fi
	fail "$msg"
fi
say "  error: $(file_field disk.img error)"

step 'abort: the source keeps the flushed write'
ctl abort >/dev/null
assert_eq "$new" "$(block_sum "$TEST_MNT/disk.img" 5)" "block 5 through the mount after the abort"
relocfs_umount
assert_eq "$new" "$(block_sum "$TEST_SRC/disk.img" 5)" "block 5 in the source after the abort"
test_done
