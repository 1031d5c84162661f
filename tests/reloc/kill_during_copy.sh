#!/bin/bash
test_description='kill -9 the daemon while it copies, and again when the files are ready, each time under a writer: restarted with the same arguments it serves every flushed write, resumes, and cuts over to exactly what the writer wrote'
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib_reloc.sh"
relocfs_mount ${RELOC_MOUNT_OPTS:-}
FILES="disk.img small.img"

step 'the writer creates a sparse 256 MiB image with data islands and a 4 MiB image, and keeps writing'
writer_start --seed 301 --direct --flush-every 16 --delay-us 2000 \
	--size 256M --file "$TEST_MNT/disk.img" --size 4M --file "$TEST_MNT/small.img"

step 'migrate slowly; kill -9 the daemon in the middle of the copy'
ctl migrate --to "$TEST_DST" --rate 8M >/dev/null
wait_until 60 eval '[ "$(file_field disk.img bytes_copied)" -gt 0 ]' || fail "copy did not start"
sleep 1
assert_eq copying "$(file_state disk.img)" "state of disk.img before the kill"
kill_daemon

step 'the writer sees the mount go away and stops with an error'
writer_stop 3

step 'restarted with the same arguments, the daemon serves every write the writer had flushed'
relocfs_mount ${RELOC_MOUNT_OPTS:-}
check_acked "$TEST_MNT" $FILES
for f in $FILES; do
	state=$(file_state "$f")
	case $state in copying|merging|ready) ;; *) fail "'$f' is in state '$state' after the restart" ;; esac
done

step 'a new writer takes the files as they are; wait until ready; kill -9 again'
writer_start --seed 302 --direct --flush-every 16 --delay-us 2000 \
	--file "$TEST_MNT/disk.img" --file "$TEST_MNT/small.img" --size 1
ctl migrate --to "$TEST_DST" 2>/dev/null && fail "a second migrate was accepted after the restart"
ctl wait --timeout 120 >/dev/null
kill_daemon
writer_stop 3

step 'restarted again, every flushed write is there'
relocfs_mount ${RELOC_MOUNT_OPTS:-}
check_acked "$TEST_MNT" $FILES
for f in $FILES; do
	state=$(file_state "$f")
	case $state in merging|ready) ;; *) fail "'$f' is in state '$state' after the second restart" ;; esac
done

step 'a third writer; wait, cut over under it, stop it'
writer_start --seed 303 --direct --flush-every 16 --delay-us 2000 \
	--file "$TEST_MNT/disk.img" --file "$TEST_MNT/small.img" --size 1
ctl wait --timeout 120 >/dev/null
ctl cutover --timeout 60 >/dev/null
sleep 0.5
writer_stop 0

step 'the live view and DEST hold exactly what the writer wrote'
check_final "$TEST_MNT" $FILES
check_final "$TEST_DST" $FILES
assert_eq "$TEST_DST" "$(status_field source)" "status source after cutover"
relocfs_umount
test_done
