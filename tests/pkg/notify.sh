#!/bin/bash
test_description='under a service manager (svcman, standing in for systemd): READY=1 comes once the mount serves, the FUSE connection goes to the fd store, log lines carry journal priorities; after a kill -9 the restarted relocfs drops the stored connection (files open on the old mount fail at once instead of hanging) and mounts anew; an unmount ends the service cleanly'
. "$(dirname "$0")/../lib.sh"
require_daemon
require_tool svcman
SVC_OUT=$TEST_DIR/svcman.out
SVC_PID=

at_cleanup eval '[ -z "$SVC_PID" ] || kill "$SVC_PID" 2>/dev/null'

# svc_lines PATTERN: how many lines of svcman's output match PATTERN
svc_lines() {
	grep -c -- "$1" "$SVC_OUT" || true
}

svc_show() {
	sed 's/^/    | /' "$SVC_OUT"
}

step 'relocfs -f runs under svcman with stderr a journal stream (JOURNAL_STREAM names it)'
printf 'data before\n' >"$TEST_SRC/disk.img"
: >"$SVC_OUT"
JOURNAL_STREAM=$(stat -c '%d:%i' "$SVC_OUT") \
	"$TOOLS/svcman" -m "$TEST_MNT" -r 1 -t 120 -- "$RELOCFS" -f "$TEST_SRC" "$TEST_MNT" >>"$SVC_OUT" 2>&1 &
SVC_PID=$!
wait_until 20 eval '[ "$(svc_lines "^ready:")" -ge 1 ]' || fail "no READY=1 within 20 s:
$(svc_show)"

step 'at READY=1 the mount was there and answered; the connection was stored first, as /dev/fuse under the name fuse'
assert_eq "ready: mounted" "$(grep '^ready:' "$SVC_OUT")" "svcman's check at READY=1"
assert_eq "fdstore: fuse /dev/fuse" "$(grep '^fdstore:' "$SVC_OUT")" "the fd store"
first_pid=$(sed -n 's/^started: pid //p' "$SVC_OUT")
assert_eq "notify: FDSTORE=1
notify: FDNAME=fuse
notify: READY=1
notify: STATUS=serving '$TEST_MNT'" "$(grep '^notify:' "$SVC_OUT" | sed 's/pid [0-9]*: //')" \
	"notifications, in order (from the worker, a child of the main process)"
assert_eq "data before" "$(cat "$TEST_MNT/disk.img")" "a file through the mount"

step 'log lines carry syslog priorities for the journal, not the "relocfs:" prefix of a terminal'
grep -qxF "<6>serving '$TEST_SRC' at '$TEST_MNT'" "$SVC_OUT" || fail "no '<6>serving' line:
$(svc_show)"
! grep -q '^relocfs: ' "$SVC_OUT" || fail "plain 'relocfs:' lines in the journal stream:
$(svc_show)"

step 'relocfs is killed with a file open on the mount; svcman starts it again with the stored connection'
exec {held}<"$TEST_MNT/disk.img"
kill -9 "$first_pid"
wait_until 20 eval '[ "$(svc_lines "^ready:")" -ge 2 ]' || fail "no second READY=1 within 20 s:
$(svc_show)"
second_pid=$(sed -n 's/^started: pid //p' "$SVC_OUT" | tail -n 1)
[ "$second_pid" != "$first_pid" ] || fail "no second start"

step 'the new relocfs dropped the stored connection, said so as a warning, and serves a new mount'
assert_eq "killed: signal 9" "$(grep '^killed:\|^exited:' "$SVC_OUT")" "the first run's end"
assert_eq "fdstore: fuse /dev/fuse
fdstore: removed fuse
fdstore: fuse /dev/fuse" "$(grep '^fdstore:' "$SVC_OUT")" "the fd store across the restart"
grep -q "^<4>the connection kept for '$TEST_MNT' cannot be taken over" "$SVC_OUT" ||
	fail "no warning about the dropped connection:
$(svc_show)"
assert_eq "ready: mounted
ready: mounted" "$(grep '^ready:' "$SVC_OUT")" "svcman's checks at READY=1"
assert_eq 1 "$(awk -v m="$TEST_MNT" '$5 == m && / - fuse\.relocfs /' /proc/self/mountinfo | wc -l)" \
	"relocfs mounts at the mountpoint (the dead one is detached)"
assert_eq "data before" "$(cat "$TEST_MNT/disk.img")" "the file through the new mount"
echo "data after" >"$TEST_MNT/disk.img"
assert_eq "data after" "$(cat "$TEST_SRC/disk.img")" "a write through the new mount, in the source"

step 'a descriptor opened on the old mount fails at once (the connection is aborted), it does not hang'
rc=0
timeout 10 cat <&"$held" >/dev/null 2>"$TEST_DIR/held.err" || rc=$?
exec {held}<&-
[ $rc != 124 ] || fail "a read on the old mount's descriptor still hangs after 10 s"
[ $rc != 0 ] || fail "a read on the old mount's descriptor succeeded"
say "  read on the old descriptor: exit $rc, $(cat "$TEST_DIR/held.err")"

step 'an unmount ends the service: the stored connection hangs up, STOPPING=1, exit status 0'
fusermount3 -u "$TEST_MNT"
wait_until 20 eval '! kill -0 $SVC_PID 2>/dev/null' || fail "svcman did not end after the unmount:
$(svc_show)"
rc=0
wait "$SVC_PID" || rc=$?
SVC_PID=
assert_eq 0 "$rc" "svcman's exit status"
assert_eq "fdstore: hung up fuse" "$(grep '^fdstore:' "$SVC_OUT" | tail -n 1)" "the stored connection at unmount"
assert_eq "notify: STOPPING=1" "$(grep 'STOPPING' "$SVC_OUT" | sed 's/pid [0-9]*: //')" "STOPPING=1"
assert_eq "exited: status 0" "$(grep '^exited:' "$SVC_OUT")" "relocfs's exit"

step 'without NOTIFY_SOCKET (a shell, mount(8)) nothing is sent and nothing is said about it'
relocfs_mount
relocfs_umount
# (the line naming the transport is there on either; nothing else is)
assert_eq "relocfs: serving '$TEST_SRC' at '$TEST_MNT'" \
	"$(grep -v '^relocfs: transport: ' "$TEST_DIR/relocfs.log")" "relocfs's log"

test_done
