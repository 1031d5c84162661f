#!/bin/bash
test_description='the Ceph cluster stops while a file is copied into RBD under a writer: the job fails with a clear reason, the writer never notices and loses nothing, and abort leaves the file where it was'
# test: one-at-a-time ceph
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../reloc/lib_reloc.sh"
. "$TOPDIR/tests/ceph/lib_ceph.sh"
. "$TOPDIR/tests/ceph/lib_rbd.sh"
[ -z "${RELOCFS_CEPH_CONF:-}" ] || skip "stops its cluster: not with RELOCFS_CEPH_CONF"

step 'a one-node Ceph cluster reaches HEALTH_OK'
ceph_start
relocfs_mount

step 'the writer creates a 32 MiB image and keeps writing; it migrates into RBD slowly'
writer_start --seed 1541 --direct --flush-every 16 --delay-us 2000 --size 32M --file "$TEST_MNT/disk.img"
ctl migrate --to "$RBD_DEST" --ceph-conf "$CEPH_CONF" --rate 2M disk.img >/dev/null
wait_until 60 eval '[ "$(file_field disk.img bytes_copied)" -gt 0 ]' || fail "copy did not start"

step 'the cluster stops: the job fails within the client timeouts, saying why'
ceph_stop
wait_state 120 disk.img failed
say "  status: $(status_json | jq -c '.files[0] | {state, error}')"
writer_running || fail "the writer stopped when the cluster went away: $(cat "$TEST_DIR/writer.log")"

step 'abort: the file stays where it was, with every write'
ctl abort >/dev/null
writer_stop 0
check_final "$TEST_MNT" disk.img
check_final "$TEST_SRC" disk.img
relocfs_umount
test_done
