#!/bin/bash
test_description='relocfs (its worker) killed at each named point of a hand-off to another host, under a real guest: before the record the restart cancels QEMU'"'"'s migration and the guest runs on at the source with the job mirroring; between the record and migrate-continue, and right after it, the restart finishes the hand-off and the guest runs on at the destination; the guest verifies every block'
#
# One daemon and one guest go through the three points: the crash point list
# arms handoff-before-record, handoff-recorded and handoff-continued, each
# killing the worker once (the supervisor keeps the mount and starts
# another).  The first cutover dies before the record; the second dies
# after the record, and the new worker, settling the hand-off, dies right
# after its own migrate-continue; the worker after it finds the migration
# completed and finishes.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../vm/guest.sh"
. "$(dirname "$0")/lib_host.sh"
. "$(dirname "$0")/../worker/lib_worker.sh"

trap 'rc=$?; set +e; host_qemu_kill; (exit $rc); cleanup' EXIT
ctl() { "$RELOCCTL" -m "$TEST_MNT" "$@"; }
status_json() { ctl status --json; }
no_handoff() { [ "$(status_json | jq -r '.handoff // "none"')" = none ]; }
handed_off() {
	[ "$(status_json | jq -r '[.files[] | select(.state == "handed-off")] | length')" = 2 ]
}
src_gen_beyond() {
	local g
	g=$(sed -n 's/^GEN \([0-9][0-9]*\) flushed.*/\1/p' "$SRC_LOG" | tail -n 1)
	[ -n "$g" ] && [ "$g" -gt "$1" ]
}
dst_exited() { ! kill -0 "$DST_PID" 2>/dev/null; }
crashed_at() { grep -q "crash point '$1' reached" "$TEST_DIR/relocfs.log"; }

step 'the other host over sshfs; relocfs armed at the three hand-off points; a guest writes'
host_sshd_start
host_sshfs_mount
RELOCFS_CRASHPOINT=handoff-before-record,handoff-recorded,handoff-continued \
	RELOCFS_CRASHPOINT_SCOPE=worker relocfs_mount
host_guest_prepare
host_src_start
host_wait_gen 2 90 || { host_console_tail; fail "the guest did not flush 2 generations"; }
ctl migrate --to "$DEST" disk.raw disk.qcow2 >/dev/null
ctl wait --timeout 150 >/dev/null || fail "wait: $(status_json)"

step 'killed before the record: the restart cancels the migration, the guest runs on at the source'
host_dst_start
w=$(worker_pid)
expect_fail ctl cutover --hook "qmp-migrate:$SRC_QMP@tcp:127.0.0.1:$MIG_PORT" --timeout 120
say "    cutover: $ERR_OUT"
wait_until 60 new_worker_since "$w" || fail "no new worker"
crashed_at handoff-before-record || fail "the worker did not die at handoff-before-record"
wait_until 90 no_handoff || fail "the restart did not settle the hand-off: $(status_json)"
status_json | jq -r '.handoff_note' | sed 's/^/    status: /'
status_json | jq -r '.handoff_note' | grep -q "interrupted before it was recorded and cancelled" ||
	fail "status does not say what happened: $(status_json)"
g=$(host_last_gen)
wait_until 60 src_gen_beyond $((g + 1)) || { host_console_tail; fail "the guest does not run on at the source"; }
wait_until 60 dst_exited || fail "the destination QEMU still waits for a migration that was cancelled"
DST_PID=
ctl wait --timeout 60 >/dev/null || fail "the job does not mirror on: $(status_json)"

step 'killed after the record, then again right after migrate-continue: the restarts finish the hand-off'
host_dst_start
w=$(worker_pid)
expect_fail ctl cutover --hook "qmp-migrate:$SRC_QMP@tcp:127.0.0.1:$MIG_PORT" --timeout 120
say "    cutover: $ERR_OUT"
wait_until 60 new_worker_since "$w" || fail "no new worker"
crashed_at handoff-recorded || fail "the worker did not die at handoff-recorded"
wait_until 120 handed_off || fail "the restarts did not finish the hand-off: $(status_json)"
crashed_at handoff-continued || fail "the settling worker did not die at handoff-continued"
status_json | jq -r '.handoff_note' | sed 's/^/    status: /'
gen_handed=$(host_last_gen)
wait_until 90 host_dst_gen_at_least $((gen_handed + 2)) ||
	{ host_console_tail; fail "the guest does not run at the destination"; }
expect_fail dd if=/dev/zero of="$TEST_MNT/disk.raw" bs=4096 count=1 conv=notrunc status=none
case $ERR_OUT in *"Read-only file system"*) ;; *) fail "open for writing: '$ERR_OUT'" ;; esac

step 'STOP: the guest verifies every block; the other host holds exactly what it wrote'
host_stop_guest
GUEST_PID=$DST_PID
guest_wait 120 || { host_console_tail; fail "the guest still runs 120 s after STOP"; }
DST_PID=
grep -aq '^VERIFY PASS' "$DST_LOG" || { host_console_tail 20; fail "the guest did not pass its own check"; }
G=$(sed -n 's/^VERIFY PASS gen=\([0-9][0-9]*\).*/\1/p' "$DST_LOG" | tr -d '\r')
expected_image vda "$G" "$NBLK" "$TEST_DIR/expect_vda.raw"
expected_image vdb "$G" $((NBLK / 2)) "$TEST_DIR/expect_vdb.raw"
cmp -s "$TEST_DIR/expect_vda.raw" "$OTHER/disk.raw" || fail "raw image differs from generation $G"
qemu-img compare -q -f raw -F qcow2 "$TEST_DIR/expect_vdb.raw" "$OTHER/disk.qcow2" ||
	fail "qcow2 image differs from generation $G"
say "    the guest verified $G generations"
test_done
