#!/bin/bash
test_description='the delta store fails between a write and its flush (XFS shut down): the flush returns EIO, the migration fails with an error naming the delta store, a cutover is refused; once the store is back, a restart serves every flushed byte and abort brings them to the source'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_faults.sh"
require_daemon
require_tool fsop
FSOP=$TOOLS/fsop

step 'a 4 MiB image; the delta store is an XFS on a loop device; migrate until ready'
xfs_fs "$TEST_DIR/delta"
head -c 4M /dev/urandom >"$TEST_SRC/disk.img"
# the merger syncs the write-ahead log itself when a write waits too long
# for a flush; were it to do so here, the flush below would find its write
# durable and rightly succeed without touching the dead store
RELOCFS_DELAYPOINT=merge-force-sync:10000000 relocfs_mount
ctl migrate --to "$TEST_DST" --delta-dir "$TEST_DIR/delta" >/dev/null
ctl wait --timeout 120 >/dev/null

step 'write and flush one block (acknowledged), then write another without a flush'
"$FSOP" pwrite "$TEST_MNT/disk.img" 8192 "flushed-block" >/dev/null
"$FSOP" fsync "$TEST_MNT/disk.img" >/dev/null
"$FSOP" pwrite "$TEST_MNT/disk.img" 1048576 "unflushed-block" >/dev/null
cp "$TEST_SRC/disk.img" "$TEST_DIR/expected.img"
printf 'flushed-block' | dd of="$TEST_DIR/expected.img" bs=1 seek=8192 conv=notrunc status=none

step 'shut the delta store down; the flush fails with EIO and the migration fails'
xfs_shutdown "$TEST_DIR/delta"
out=$(untrapped "$FSOP" fsync "$TEST_MNT/disk.img") || true
assert_eq EIO "$out" "fsync after the delta store failed"
wait_state 10 disk.img failed
err=$(file_field disk.img error)
say "  disk.img: failed: $err"
case $err in *"delta store"*) ;; *) fail "the error does not name the delta store: $err" ;; esac
expect_fail ctl cutover --timeout 10
say "  cutover: $ERR_OUT"

step 'unmount; bring the delta store back; restart: the flushed block is served'
relocfs_umount
umount "$TEST_DIR/delta"
mount -t xfs "${LOOP_DEVS[0]}" "$TEST_DIR/delta" || fail "cannot mount the delta store again"
relocfs_mount
assert_eq "flushed-block" "$(dd if="$TEST_MNT/disk.img" bs=1 skip=8192 count=13 status=none)" \
	"the flushed block after the restart"

step 'abort: the source holds the flushed block and the original bytes around it'
ctl abort >/dev/null
relocfs_umount
# the unflushed block may or may not have survived: compare all but it
cmp <(head -c 1048576 "$TEST_SRC/disk.img") <(head -c 1048576 "$TEST_DIR/expected.img") ||
	fail "the source differs from the flushed data before 1 MiB"
cmp <(tail -c +1052673 "$TEST_SRC/disk.img") <(tail -c +1052673 "$TEST_DIR/expected.img") ||
	fail "the source differs from the original past the unflushed block"
assert_eq "" "$(ls -A "$TEST_DIR/delta")" "the delta store after the abort"
test_done
