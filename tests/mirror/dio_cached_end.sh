#!/bin/bash
test_description='the kernel writeback cache (-o writeback) against the backing file: O_DIRECT reads of files that cached writes made longer read a hole below the cached end as zeros in full, not as end of file, from one thread and from 64 at once; SEEK_DATA and SEEK_HOLE do not call a cached page a hole; once written back the backing file ends where the mount said'
. "$(dirname "$0")/../lib.sh"
require_tool dio_cached_end
relocfs_mount -o writeback

step "-o writeback lifts the mount's strict dirty limit"
strict=/sys/class/bdi/$(mountpoint -d "$TEST_MNT")/strict_limit
[ "$(cat "$strict")" = 0 ] || fail "the mount's strict dirty limit is still on ($strict)"

step 'reads below the cached end (one thread, then 8 and 64 on files of their own), seeks over a cached page'
for n in 8 64; do
	"$TOOLS/dio_cached_end" "$TEST_MNT" "$n" 100 >"$TEST_DIR/out" 2>&1 ||
		fail "dio_cached_end with $n threads: $(cat "$TEST_DIR/out")"
	say "  $(tail -1 "$TEST_DIR/out")"
done

step 'written back, the backing file has the size the mount showed'
head -c 4096 /dev/urandom >"$TEST_DIR/page"
dd if="$TEST_DIR/page" of="$TEST_MNT/grown" bs=4k seek=300 status=none
size=$(stat -c %s "$TEST_MNT/grown")
[ "$size" = $((301 * 4096)) ] || fail "the mount shows $size bytes, not $((301 * 4096))"
dd if="$TEST_MNT/grown" of="$TEST_DIR/direct" bs=64k iflag=direct status=none ||
	fail "O_DIRECT read of the grown file failed"
[ "$(stat -c %s "$TEST_DIR/direct")" = "$size" ] ||
	fail "an O_DIRECT read of the whole file gave $(stat -c %s "$TEST_DIR/direct") bytes, not $size"
cmp -s <(tail -c 4096 "$TEST_DIR/direct") "$TEST_DIR/page" || fail "the last page read O_DIRECT differs"
sync "$TEST_MNT/grown"
[ "$(stat -c %s "$TEST_SRC/grown")" = "$size" ] || fail "after fsync the backing file has $(stat -c %s "$TEST_SRC/grown") bytes"
cmp "$TEST_SRC/grown" "$TEST_DIR/direct" || fail "the backing file differs from what the mount read"

relocfs_umount
test_done
