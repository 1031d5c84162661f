#!/bin/bash
test_description='sparse files and SEEK_DATA/SEEK_HOLE: holes written through the mount stay holes on the backing file and lseek reports the backing extents'
. "$(dirname "$0")/../lib.sh"
require_tool fsop
FSOP=$TOOLS/fsop
relocfs_mount

step 'a sparse file written through the mount is sparse on the backing file'
dd if=/dev/urandom of="$TEST_MNT/sparse" bs=4k count=1 status=none
dd if=/dev/urandom of="$TEST_MNT/sparse" bs=4k count=2 seek=1000 conv=notrunc status=none
dd if=/dev/urandom of="$TEST_MNT/sparse" bs=4k count=1 seek=25000 conv=notrunc status=none
assert_eq $((25001 * 4096)) "$(stat -c %s "$TEST_SRC/sparse")" "backing size"
b=$(stat -c %b "$TEST_SRC/sparse")
[ "$b" -le 256 ] || fail "backing file has $b 512-byte blocks for 16 KiB of data: holes were filled"
kb=$(du -k "$TEST_SRC/sparse" | cut -f1)
[ "$kb" -le 128 ] || fail "du says $kb KiB for the backing file"

step 'SEEK_DATA/SEEK_HOLE through the mount report the backing extents'
assert_eq "$("$FSOP" seekmap "$TEST_SRC/sparse")" "$("$FSOP" seekmap "$TEST_MNT/sparse")" "extent map of sparse"
[ "$("$FSOP" seekmap "$TEST_MNT/sparse" | wc -l)" -ge 3 ] || fail "fewer than three data extents through the mount"

step 'truncate -s 1G through the mount allocates nothing'
truncate -s 1G "$TEST_MNT/empty"
assert_eq 0 "$(stat -c %b "$TEST_SRC/empty")" "blocks of the backing file"
assert_eq "" "$("$FSOP" seekmap "$TEST_MNT/empty")" "extent map of an all-hole file"

step 'single lseek calls answer as on the backing file, ENXIO past the last extent included'
size=$(stat -c %s "$TEST_SRC/sparse")
for args in "0 data" "0 hole" "4096 data" "5000 hole" "$((1001 * 4096)) data" "$((25000 * 4096 + 1)) data" \
	    "$((size - 1)) hole" "$size data" "$size hole" "$((size + 4096)) data"; do
	set -- $args
	assert_eq "$(untrapped "$FSOP" seek "$TEST_SRC/sparse" "$1" "$2")" "$(untrapped "$FSOP" seek "$TEST_MNT/sparse" "$1" "$2")" "lseek($1, SEEK_${2^^})"
done
assert_eq ENXIO "$(untrapped "$FSOP" seek "$TEST_MNT/empty" 0 data)" "SEEK_DATA in an all-hole file"

step 'cp --sparse=always out of the mount and back in keeps the holes and the data'
cp --sparse=always "$TEST_MNT/sparse" "$TEST_DIR/copy-out"
cmp "$TEST_SRC/sparse" "$TEST_DIR/copy-out" || fail "copy out of the mount differs"
cp --sparse=always "$TEST_DIR/copy-out" "$TEST_MNT/copy-in"
cmp "$TEST_SRC/sparse" "$TEST_SRC/copy-in" || fail "copy into the mount differs"
b=$(stat -c %b "$TEST_SRC/copy-in")
[ "$b" -le 256 ] || fail "copy-in has $b blocks on the backing directory: holes were filled"

step 'cp (auto sparse, SEEK_DATA based) within the mount keeps the holes'
cp "$TEST_MNT/sparse" "$TEST_MNT/copy-auto"
cmp "$TEST_SRC/sparse" "$TEST_SRC/copy-auto" || fail "copy within the mount differs"
b=$(stat -c %b "$TEST_SRC/copy-auto")
[ "$b" -le 256 ] || fail "copy-auto has $b blocks on the backing directory: holes were filled"

step 'punching a hole through the mount shows in the extent map'
fallocate -p -o $((1000 * 4096)) -l 8192 "$TEST_MNT/sparse"
assert_eq "$("$FSOP" seekmap "$TEST_SRC/sparse")" "$("$FSOP" seekmap "$TEST_MNT/sparse")" "extent map after punching"
"$FSOP" seekmap "$TEST_MNT/sparse" | grep -q "^data $((1000 * 4096)) " && fail "the punched extent is still reported as data"

step 'four threads sharing one descriptor get the same SEEK_DATA/SEEK_HOLE answers as one thread alone'
sync "$TEST_MNT/sparse"
assert_eq ok "$(untrapped "$FSOP" seekstorm "$TEST_SRC/sparse" 4 300)" "threads on the backing file (the probe itself)"
assert_eq ok "$(untrapped "$FSOP" seekstorm "$TEST_MNT/sparse" 4 300)" "threads on the file through the mount"

step 'offsets beyond 4 GiB and 2 TiB: a write lands at the right place in the backing file'
for off in $((5 << 30)) $(((2 << 40) + 12345)); do
	"$FSOP" pwrite "$TEST_MNT/huge" "$off" "far-$off" >/dev/null
	assert_eq $((off + ${#off} + 4)) "$(stat -c %s "$TEST_SRC/huge")" "backing size after a write at $off"
	assert_eq "far-$off" "$(dd if="$TEST_SRC/huge" bs=1 skip="$off" count=$((${#off} + 4)) iflag=skip_bytes status=none)" "bytes at $off on the backing file"
	assert_eq "far-$off" "$(dd if="$TEST_MNT/huge" bs=1 skip="$off" count=$((${#off} + 4)) iflag=skip_bytes status=none)" "bytes at $off through the mount"
	assert_eq "$("$FSOP" seek "$TEST_SRC/huge" $((3 << 30)) data)" "$("$FSOP" seek "$TEST_MNT/huge" $((3 << 30)) data)" "SEEK_DATA from 3 GiB"
done
[ "$(stat -c %b "$TEST_SRC/huge")" -le 256 ] || fail "the backing file of two small writes far apart is not sparse"

relocfs_umount
test_done
