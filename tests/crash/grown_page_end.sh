#!/bin/bash
test_description='during a migration a file grows past a page that the kernel then writes back whole, and relocfs is killed before the next flush: restarted, the file ends at that page, zero-filled past what was written, with every flushed byte, and the cutover gives DEST the same'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
require_daemon
require_cmd xfs_io cmp

# With the writeback cache the kernel sends a dirty page whole, cut only at
# the size it knows. The page that held the end of a file the guest has
# since made longer reaches relocfs with zeros past the old end, and the
# file there then ends at that page's end: a size the guest never set, as
# on ext4 after a power loss (README, Writeback cache). sync_file_range
# writes back that one page here, so that the state is certain.
PG=4096
S0=$((10 * PG + 100))		# the file's size at the start
S1=$((S0 + 1000))		# after the flushed write: ends inside page 10
S2=$((S1 + 500))		# the unflushed write that extends it in page 10
FAR=$((20 * PG))		# an unflushed write there makes the file 20 pages long

step 'a file of 10 pages and 100 bytes; migrate it; the file grows by a flushed write'
head -c "$S0" /dev/urandom >"$TEST_SRC/f.img"
relocfs_mount
ctl migrate --to "$TEST_DST" f.img >/dev/null
ctl wait --timeout 60 >/dev/null
head -c 1000 /dev/urandom >"$TEST_DIR/a"
head -c 500 /dev/urandom >"$TEST_DIR/b"
xfs_io -c "pwrite -q -i $TEST_DIR/a $S0 1000" -c fdatasync "$TEST_MNT/f.img" ||
	fail "the flushed write failed"
cp "$TEST_MNT/f.img" "$TEST_DIR/flushed"
assert_eq "$S1" "$(stat -c %s "$TEST_DIR/flushed")" "size after the flushed write"

step 'without a flush: extend in page 10, write at page 20, write back page 10 alone'
# one xfs_io keeps the file open from the writes to the kill: its commands
# come through a fifo, and a write to it finds out if it is gone
mkfifo "$TEST_DIR/cmds"
xfs_io "$TEST_MNT/f.img" <"$TEST_DIR/cmds" >"$TEST_DIR/xfs_io.out" 2>&1 &
XFS_IO=$!
exec 3>"$TEST_DIR/cmds"
trap '' PIPE
io() {
	printf '%s\n' "$*" >&3 || fail "xfs_io is gone before '$*': $(cat "$TEST_DIR/xfs_io.out")"
}
io "pwrite -q -i $TEST_DIR/b $S1 500"
io "pwrite -q -S 0x5a $FAR 100"
# start page 10's write-back, then wait for it (xfs_io keeps only the last
# of sync_range's flags); then xfs_io creates the file "synced"
io "sync_range -w $((10 * PG)) $PG"
io "sync_range -a $((10 * PG)) $PG"
io "open -c $TEST_DIR/synced"
wait_until 30 test -e "$TEST_DIR/synced" ||
	fail "xfs_io did not get through its commands: $(cat "$TEST_DIR/xfs_io.out")"
# the delta store's size is page 10's end (or, had the kernel written page
# 20 back on its own first, the file's last size)
grown=$(file_field f.img size)
one_of "$grown" $((11 * PG)) $((FAR + 100)) ||
	fail "the delta store's size is $grown, not page 10's end $((11 * PG)) or $((FAR + 100))"
say "  relocfs got the page: the file is $grown bytes in the delta store"

step 'kill -9 relocfs before any flush; restart it with the same arguments'
kill_daemon
exec 3>&-
wait "$XFS_IO" 2>/dev/null || true
relocfs_mount
size=$(stat -c %s "$TEST_MNT/f.img")
assert_eq "$grown" "$size" "size of the file after the restart"

step 'every flushed byte is there, the page holds what was written and zeros past it'
cmp -n "$S1" "$TEST_DIR/flushed" "$TEST_MNT/f.img" || fail "a flushed byte differs"
cmp -n 500 "$TEST_DIR/b" "$TEST_MNT/f.img" 0 "$S1" || fail "the written-back page lost its write"
cmp -n $((11 * PG - S2)) /dev/zero "$TEST_MNT/f.img" 0 "$S2" ||
	fail "page 10 is not zero past the write"
cp "$TEST_MNT/f.img" "$TEST_DIR/restarted"

step 'the migration goes on; after the cutover DEST holds the file as the restart showed it'
ctl wait --timeout 60 >/dev/null
ctl cutover --timeout 60 >/dev/null
relocfs_umount
cmp "$TEST_DIR/restarted" "$TEST_DST/f.img" || fail "DEST differs from the file the restart showed"
test_done
