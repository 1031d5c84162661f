#!/bin/bash
test_description='relocate a sparse 64 MiB image and a small one into RBD images while a writer flushes, cut over under it: later writes land in the images, the live view, rbd export and a restarted mount hold exactly what the writer wrote, holes stay unallocated, the metadata is kept in the image, a restart and a new worker serve the images'
# test: one-at-a-time ceph
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../reloc/lib_reloc.sh"
. "$TOPDIR/tests/ceph/lib_ceph.sh"
. "$TOPDIR/tests/ceph/lib_rbd.sh"
. "$TOPDIR/tests/worker/lib_worker.sh"
FILES="disk.img small.img"
# a file with two 1 MiB islands in 32 MiB: two of the image's 4 MiB objects
head -c 1M /dev/urandom >"$TEST_SRC/holes.img"
head -c 1M /dev/urandom | dd of="$TEST_SRC/holes.img" bs=1M seek=20 status=none
truncate -s 32M "$TEST_SRC/holes.img"

step 'a one-node Ceph cluster reaches HEALTH_OK'
ceph_start
relocfs_mount

step 'the writer creates a sparse 64 MiB image with data islands and a 4 MiB image, and keeps writing'
writer_start --seed 1501 --direct --flush-every 32 --delay-us 1000 \
	--size 64M --file "$TEST_MNT/disk.img" --size 4M --file "$TEST_MNT/small.img"
chmod 640 "$TEST_MNT/disk.img"

step 'migrate both files into RBD (rate-limited so that the copy overlaps the writes)'
ctl migrate --to "$RBD_DEST" --ceph-conf "$CEPH_CONF" --rate 16M $FILES holes.img >/dev/null
assert_eq "$(image_of disk.img)
$(image_of holes.img)
$(image_of small.img)" "$(rbd_images)" "the images in the pool"
for f in $FILES; do
	state=$(file_state "$f")
	case $state in copying|merging|ready) ;; *) fail "'$f' is in state '$state' right after migrate" ;; esac
done

step 'wait until both files are ready, verify against the images; the writer is still at work'
ctl wait --timeout 180 >/dev/null
ctl verify >/dev/null
writer_running || fail "the writer stopped during the copy: $(cat "$TEST_DIR/writer.log")"

step 'cut over while the writer runs; it keeps writing, into the images, then stops cleanly'
ctl cutover --timeout 60 >/dev/null
writer_running || fail "the writer stopped during the cutover: $(cat "$TEST_DIR/writer.log")"
for f in $FILES; do
	assert_eq done "$(file_state "$f")" "state of '$f' after the cutover"
done
sleep 2
writer_stop 0

step 'the live view and rbd export hold exactly what the writer wrote'
check_final "$TEST_MNT" $FILES
mkdir -p "$TEST_DIR/export"
for f in $FILES; do
	rbd_export_to "$(image_of "$f")" "$TEST_DIR/export/$f"
done
check_final "$TEST_DIR/export" $FILES
rbd_export_to "$(image_of holes.img)" "$TEST_DIR/export/holes.img"
cmp "$TEST_SRC/holes.img" "$TEST_DIR/export/holes.img" || fail "holes.img differs in its image"

step 'the source files were not written after the cutover (the images were)'
for f in $FILES; do
	if "$WRITER" --check "$TEST_SRC/$f" --model "$MODEL/$f.final" >/dev/null 2>&1; then
		fail "the source '$f' holds the writer's final data: writes after the cutover went there"
	fi
done

step 'size and mode through the mount are the image'"'"'s; its metadata records them'
assert_eq "$(stat -c %s "$TEST_DIR/export/disk.img") 640" "$(stat -c '%s %a' "$TEST_MNT/disk.img")" \
	"size and mode of disk.img"
assert_eq 640 "$(rbd_ image-meta get "rbd/$(image_of disk.img)" relocfs.mode)" "relocfs.mode"
assert_eq disk.img "$(rbd_ image-meta get "rbd/$(image_of disk.img)" relocfs.path)" "relocfs.path"

step 'holes stay unallocated: two 1 MiB islands in 32 MiB take two 4 MiB objects'
assert_eq 8388608 "$(rbd_ du --format json "rbd/$(image_of holes.img)" | jq '.images[0].used_size')" \
	"bytes used by the image of holes.img"

step 'a restart serves the images with the same content, and writes still go there'
relocfs_umount
relocfs_mount
check_final "$TEST_MNT" $FILES
printf 'after restart' | dd of="$TEST_MNT/small.img" bs=1 seek=4096 conv=notrunc status=none
sync "$TEST_MNT/small.img"
rbd_export_to "$(image_of small.img)" "$TEST_DIR/export/small.img"
assert_eq "after restart" "$(dd if="$TEST_DIR/export/small.img" bs=1 skip=4096 count=13 status=none)" \
	"bytes written after the restart, in the image"

step 'kill -9 the worker: the next one opens the images again and serves them'
kill_worker
check_final "$TEST_MNT" disk.img
printf 'after a worker' | dd of="$TEST_MNT/small.img" bs=1 seek=8192 conv=notrunc status=none
sync "$TEST_MNT/small.img"
rbd_export_to "$(image_of small.img)" "$TEST_DIR/export/small.img"
assert_eq "after a worker" "$(dd if="$TEST_DIR/export/small.img" bs=1 skip=8192 count=14 status=none)" \
	"bytes written through the new worker, in the image"
relocfs_umount
test_done
