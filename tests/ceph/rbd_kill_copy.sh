#!/bin/bash
test_description='kill -9 relocfs while it copies a file into an RBD image under a writer: restarted with the same arguments it serves every flushed write, the job resumes into the same image, survives the death of a worker and finishes, and the cutover leaves exactly what the writer wrote in the image'
# test: one-at-a-time ceph
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../reloc/lib_reloc.sh"
. "$TOPDIR/tests/ceph/lib_ceph.sh"
. "$TOPDIR/tests/ceph/lib_rbd.sh"
. "$TOPDIR/tests/worker/lib_worker.sh"

step 'a one-node Ceph cluster reaches HEALTH_OK'
ceph_start
relocfs_mount

step 'the writer creates a 48 MiB image and keeps writing'
writer_start --seed 1511 --direct --flush-every 16 --delay-us 2000 --size 48M --file "$TEST_MNT/disk.img"

step 'migrate it into RBD slowly; kill -9 the daemon in the middle of the copy'
ctl migrate --job rkc --to "$RBD_DEST" --ceph-conf "$CEPH_CONF" --rate 4M disk.img >/dev/null
wait_until 60 eval '[ "$(file_field disk.img bytes_copied)" -gt 0 ]' || fail "copy did not start"
sleep 1
assert_eq copying "$(file_state disk.img)" "state of disk.img before the kill"
copied_before=$(file_field disk.img bytes_copied)
kill_daemon
writer_stop 3

step 'restarted, the daemon serves every flushed write and resumes the copy into the same image'
relocfs_mount
check_acked "$TEST_MNT" disk.img
state=$(file_state disk.img)
case $state in copying|merging|ready) ;; *) fail "disk.img is in state '$state' after the restart" ;; esac
assert_eq "$(image_of disk.img)" "$(rbd_images)" "the images in the pool"
say "  $copied_before bytes copied before the kill, $(file_field disk.img bytes_copied) after the restart"

step 'a new writer; kill -9 the worker while it copies: the next one carries on'
writer_start --seed 1512 --direct --flush-every 16 --delay-us 2000 --file "$TEST_MNT/disk.img" --size 1
kill_worker
writer_running || fail "the writer noticed the worker's death: $(cat "$TEST_DIR/writer.log")"

step 'the job finishes, verifies and cuts over under the writer'
# the limit holds the merges too, and the writer may dirty blocks about as
# fast: unlimited, the job catches up whatever the machine's speed
ctl limit --job rkc 0 >/dev/null
ctl wait --timeout 180 >/dev/null
ctl verify >/dev/null
ctl cutover --timeout 60 >/dev/null
sleep 1
writer_stop 0

step 'the live view and rbd export hold exactly what the writer wrote'
check_final "$TEST_MNT" disk.img
mkdir -p "$TEST_DIR/export"
rbd_export_to "$(image_of disk.img)" "$TEST_DIR/export/disk.img"
check_final "$TEST_DIR/export" disk.img
assert_eq done "$(file_state disk.img)" "state after the cutover"
relocfs_umount
test_done
