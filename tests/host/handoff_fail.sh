#!/bin/bash
test_description='failures on the way to another host, one guest through all of them: the sshfs connection cut mid-copy fails the job with one clear line while the guest writes on, and abort brings everything back; the destination QEMU killed while QEMU copies memory cancels the hand-off, the guest runs on at the source and the job still mirrors; a second attempt hands the guest over and it verifies every block'
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../vm/guest.sh"
. "$(dirname "$0")/lib_host.sh"

trap 'rc=$?; set +e; host_qemu_kill; (exit $rc); cleanup' EXIT
ctl() { "$RELOCCTL" -m "$TEST_MNT" "$@"; }
status_json() { ctl status --json; }
file_field() { status_json | jq -r --arg p "$1" '.files[] | select(.path == $p) | .'"$2"; }
some_failed() { [ "$(status_json | jq '[.files[] | select(.state == "failed")] | length')" -gt 0 ]; }
copied_some() { [ "$(file_field disk.raw bytes_copied)" -gt 0 ]; }
in_ram_phase() {	# relocfs waits for QEMU, whose migration stream is connected
	[ "$(status_json | jq -r '.handoff.phase // ""')" = "QEMU copies the VM's memory" ] &&
		ss -Htn state established "( dport = :$MIG_PORT )" | grep -q .
}
src_gen_beyond() {	# the source's console shows a generation > N
	local g
	g=$(sed -n 's/^GEN \([0-9][0-9]*\) flushed.*/\1/p' "$SRC_LOG" | tail -n 1)
	[ -n "$g" ] && [ "$g" -gt "$1" ]
}

step 'the other host over sshfs; a guest with two disks on the mount'
host_sshd_start
host_sshfs_mount
relocfs_mount
host_guest_prepare
host_src_start
host_wait_gen 2 90 || { host_console_tail; fail "the guest did not flush 2 generations"; }

step 'the sshfs connection is cut mid-copy: the job fails with one clear line, the guest writes on'
ctl migrate --to "$DEST" --rate 2M disk.raw disk.qcow2 >/dev/null
wait_until 60 copied_some || fail "the copy did not start: $(status_json)"
host_sshfs_cut
wait_until 60 some_failed || fail "no file failed after the cut: $(status_json)"
g=$(host_last_gen)
expect_fail ctl wait --timeout 30
say "    relocctl wait: $ERR_OUT"
assert_eq 1 "$(printf '%s\n' "$ERR_OUT" | grep -c .)" "relocctl wait says it in one line"
case $ERR_OUT in
*"cannot write the destination"*|*"cannot sync the destination"*|*"no longer leads to the copy"*|*"cannot reach the destination"*) ;;
*) fail "relocctl wait does not say what failed: '$ERR_OUT'" ;;
esac
host_wait_gen $((g + 2)) 60 || { host_console_tail; fail "the guest stopped writing after the cut"; }

step 'abort: every write is back on the source, the guest still writes'
ctl abort >"$TEST_DIR/abort.out" 2>&1 || fail "abort: $(cat "$TEST_DIR/abort.out")"
sed 's/^/    /' "$TEST_DIR/abort.out"
[ "$(status_json | jq -r '.destination // ""')" = "" ] || fail "a job is left after abort: $(status_json)"
g=$(host_last_gen)
host_wait_gen $((g + 2)) 60 || { host_console_tail; fail "the guest stopped writing after the abort"; }

step 'a new sshfs connection; migrate again, ready'
host_sshfs_umount
rm -rf "${OTHER:?}"/*
host_sshfs_mount
ctl migrate --to "$DEST" disk.raw disk.qcow2 >/dev/null
ctl wait --timeout 150 >/dev/null || fail "wait: $(status_json)"

step 'the destination QEMU is killed while QEMU copies memory: nothing switched, the guest runs on at the source'
host_dst_start
host_qmp "$SRC_QMP" '{"execute":"migrate-set-parameters","arguments":{"max-bandwidth":1048576}}' >/dev/null
ctl cutover --hook "qmp-migrate:$SRC_QMP@tcp:127.0.0.1:$MIG_PORT" --timeout 300 \
	>"$TEST_DIR/cut1.out" 2>&1 &
cut_pid=$!
wait_until 120 in_ram_phase || fail "the hand-off did not reach the memory copy: $(status_json)"
kill -9 "$DST_PID"
wait "$DST_PID" 2>/dev/null || true
DST_PID=
rc=0
wait "$cut_pid" || rc=$?
[ $rc = 1 ] || fail "cutover exited $rc: $(cat "$TEST_DIR/cut1.out")"
say "    cutover: $(cat "$TEST_DIR/cut1.out")"
grep -q "hand-off cancelled, nothing switched, the VM runs on at the source" "$TEST_DIR/cut1.out" ||
	fail "cutover does not say the VM runs on: $(cat "$TEST_DIR/cut1.out")"
g=$(host_last_gen)
wait_until 60 src_gen_beyond $((g + 1)) || { host_console_tail; fail "the guest does not run on at the source"; }
[ "$(status_json | jq -r '.handoff // "none"')" = none ] || fail "a hand-off is left: $(status_json)"
ctl wait --timeout 60 >/dev/null || fail "the job does not mirror on: $(status_json)"
host_qmp "$SRC_QMP" '{"execute":"migrate-set-parameters","arguments":{"max-bandwidth":1073741824}}' >/dev/null

step 'a second attempt hands the guest over'
host_dst_start
ctl cutover --hook "qmp-migrate:$SRC_QMP@tcp:127.0.0.1:$MIG_PORT" --timeout 120 \
	>"$TEST_DIR/cut2.out" 2>&1 || { host_console_tail; fail "cutover: $(cat "$TEST_DIR/cut2.out")"; }
sed 's/^/    /' "$TEST_DIR/cut2.out"
gen_handed=$(host_last_gen)
wait_until 90 host_dst_gen_at_least $((gen_handed + 2)) ||
	{ host_console_tail; fail "the destination flushed nothing after the hand-off"; }

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
