#!/bin/bash
test_description='a write that was never flushed, merged into DEST, then kill -9: after the restart the live view may show the old or the new block, but whichever it shows must not change when the file is cut over (nothing wrote it since)'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
require_daemon

# block_sum FILE BLOCK: md5 of one 4 KiB block, read with O_DIRECT so that
# the page cache cannot answer for the daemon
block_sum() {
	dd if="$1" bs=4096 skip="$2" count=1 iflag=direct status=none | md5sum | cut -d' ' -f1
}

step 'a 4 MiB image of random data; migrate it; wait until nothing is left to merge'
head -c 4M /dev/urandom >"$TEST_SRC/disk.img"
relocfs_mount
ctl migrate --to "$TEST_DST" disk.img >/dev/null
ctl wait --timeout 60 >/dev/null
wait_until 60 eval '[ "$(file_field disk.img unmerged_bytes)" = 0 ]' || fail "the copy did not finish"
old=$(block_sum "$TEST_SRC/disk.img" 10)

step 'write block 10 without a flush; the copier merges it into DEST'
head -c 4096 /dev/urandom >"$TEST_DIR/new.blk"
new=$(block_sum "$TEST_DIR/new.blk" 0)
dd if="$TEST_DIR/new.blk" of="$TEST_MNT/disk.img" bs=4096 seek=10 conv=notrunc status=none
assert_eq "$new" "$(block_sum "$TEST_MNT/disk.img" 10)" "block 10 through the mount after the write"
wait_until 60 eval '[ "$(file_field disk.img unmerged_bytes)" = 0 ]' || fail "the block was not merged"
say "  DEST block 10 is the $( [ "$(block_sum "$TEST_DST/disk.img" 10)" = "$new" ] && echo new || echo old) block"

step 'kill -9 the daemon and restart it with the same arguments'
kill_daemon
relocfs_mount
before=$(block_sum "$TEST_MNT/disk.img" 10)
case $before in
"$old") say "  after the restart block 10 is the old block (the write was not flushed)" ;;
"$new") say "  after the restart block 10 is the new block" ;;
*) fail "block 10 is neither the old nor the new block after the restart" ;;
esac

step 'cut over: block 10 reads as it did after the restart'
ctl wait --timeout 60 >/dev/null
ctl cutover --timeout 60 >/dev/null
assert_eq "$before" "$(block_sum "$TEST_MNT/disk.img" 10)" \
	"block 10 after the cutover (old $old, new $new)"
relocfs_umount
assert_eq "$before" "$(block_sum "$TEST_DST/disk.img" 10)" "block 10 in DEST after the cutover"
test_done
