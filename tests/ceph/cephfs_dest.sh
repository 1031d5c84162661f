#!/bin/bash
test_description='relocate files onto CephFS mounted with ceph-fuse (which finds no holes with SEEK_HOLE and lacks ZERO_RANGE) while a buffered writer flushes, verify, cut over under it: CephFS and the live view hold exactly what the writer wrote'
# test: one-at-a-time ceph
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../reloc/lib_reloc.sh"
. "$TOPDIR/tests/ceph/lib_ceph.sh"

step 'a one-node Ceph cluster with a CephFS, mounted with ceph-fuse'
ceph_start mds
ceph_fuse_mount "$TEST_DIR/cephfs"
DEST=$TEST_DIR/cephfs/vms
head -c 1M /dev/urandom >"$TEST_SRC/holes.img"
head -c 1M /dev/urandom | dd of="$TEST_SRC/holes.img" bs=1M seek=20 status=none
truncate -s 32M "$TEST_SRC/holes.img"
relocfs_mount

step 'the writer creates a sparse 32 MiB image and keeps writing'
# buffered only: ceph-fuse itself returns stale data to buffered reads of a
# file that O_DIRECT writes change (relocwriter --direct straight on a
# ceph-fuse mount, without relocfs, sees hundreds of mismatches)
writer_start --seed 1531 --flush-every 32 --delay-us 1000 --size 32M --file "$TEST_MNT/disk.img"

step 'migrate both files onto CephFS, wait, verify'
ctl migrate --to "$DEST" --rate 16M disk.img holes.img >/dev/null
ctl wait --timeout 180 >/dev/null
ctl verify >/dev/null
writer_running || fail "the writer stopped during the copy: $(cat "$TEST_DIR/writer.log")"

step 'cut over while the writer runs; it keeps writing, onto CephFS, then stops cleanly'
ctl cutover --timeout 60 >/dev/null
sleep 2
writer_stop 0

step 'the live view and CephFS hold exactly what the writer wrote'
check_final "$TEST_MNT" disk.img
check_final "$DEST" disk.img
cmp "$TEST_SRC/holes.img" "$DEST/holes.img" || fail "holes.img differs on CephFS"
cmp "$TEST_SRC/holes.img" "$TEST_MNT/holes.img" || fail "holes.img differs in the mount"
for f in disk.img holes.img; do
	assert_eq "done $DEST" "$(file_state "$f") $(file_field "$f" backend)" "state and backend of '$f'"
done
relocfs_umount
test_done
