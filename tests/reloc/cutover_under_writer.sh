#!/bin/bash
test_description='migrate a sparse 256 MiB image and a small one while a writer runs, wait, cut over: the destination and the live view hold exactly what the writer wrote, holes stay holes, new files land in the destination'
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib_reloc.sh"
relocfs_mount ${RELOC_MOUNT_OPTS:-}

step 'the writer creates a sparse 256 MiB image with data islands and a 4 MiB image, and keeps writing'
writer_start --seed 101 --direct --flush-every 32 --delay-us 1000 \
	--size 256M --file "$TEST_MNT/disk.img" --size 4M --file "$TEST_MNT/small.img"

step 'migrate the whole tree to DEST (rate-limited so that the copy overlaps the writes)'
ctl migrate --to "$TEST_DST" --rate 16M >/dev/null
for f in disk.img small.img; do
	state=$(file_state "$f")
	case $state in copying|merging|ready) ;; *) fail "'$f' is in state '$state' right after migrate" ;; esac
done

step 'wait until both files are ready; the writer is still at work'
wait_until 60 eval '[ "$(file_field disk.img bytes_copied)" -gt 0 ]' || fail "copy did not start"
ctl wait --timeout 120 >/dev/null
writer_running || fail "the writer stopped during the copy: $(cat "$TEST_DIR/writer.log")"

step 'cut over while the writer runs'
ctl cutover --timeout 60 >/dev/null
writer_running || fail "the writer stopped during the cutover: $(cat "$TEST_DIR/writer.log")"

step 'the writer keeps writing after the switch, then stops cleanly'
sleep 1
writer_stop 0

step 'the live view and DEST hold exactly what the writer wrote'
check_final "$TEST_MNT" disk.img small.img
check_final "$TEST_DST" disk.img small.img

step 'status: both files done, served from DEST'
assert_eq "$TEST_DST" "$(status_field source)" "status source after cutover"
for f in disk.img small.img; do
	assert_eq "done $TEST_DST" "$(file_state "$f") $(file_field "$f" backend)" "state and backend of '$f'"
done

step 'a file created through the mount after the cutover lands in DEST, not in the source'
echo "after cutover" >"$TEST_MNT/new.txt"
assert_eq "after cutover" "$(cat "$TEST_DST/new.txt" 2>&1)" "DEST/new.txt"
[ ! -e "$TEST_SRC/new.txt" ] || fail "new.txt was created in the source"

step 'a restart with the same arguments serves DEST with the same content'
relocfs_umount
relocfs_mount ${RELOC_MOUNT_OPTS:-}
assert_eq "$TEST_DST" "$(status_field source)" "status source after restart"
check_final "$TEST_MNT" disk.img small.img
assert_eq "after cutover" "$(cat "$TEST_MNT/new.txt")" "new.txt after restart"
relocfs_umount

step 'the sparse image is still sparse in DEST: no more allocated than the data it holds'
apparent=$(stat -c %s "$TEST_DST/disk.img")
alloc=$(allocated "$TEST_DST/disk.img")
data=$(( $("$WRITER" --info --model "$MODEL/disk.img.final" | awk '{ print $6 }') * 4096 ))
say "  apparent $apparent, allocated $alloc, data blocks $data bytes"
[ "$alloc" -lt $((apparent / 2)) ] || fail "DEST/disk.img: $alloc bytes allocated of $apparent"
[ "$alloc" -le $((data + data / 4 + (2 << 20))) ] ||
	fail "DEST/disk.img: $alloc bytes allocated for $data bytes of data blocks (holes were filled)"
test_done
