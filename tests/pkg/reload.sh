#!/bin/bash
test_description='systemctl reload without systemd: the unit'"'"'s ExecReload line (relocctl restart --exec) hands a mount served under a service manager to a new binary while a writer runs and a migration copies; the writer sees no error, the mount and the service'"'"'s main process stay, the migration carries on and cuts over'
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../reloc/lib_reloc.sh"
require_daemon
require_tool svcman
"$RELOCCTL" --help | grep -q '^  restart' ||
	skip "relocctl has no 'restart' command yet (the worker restart, issue 10): reload cannot hand over"
SVC_OUT=$TEST_DIR/svcman.out
SVC_PID=
at_cleanup eval '[ -z "$SVC_PID" ] || kill "$SVC_PID" 2>/dev/null'

step 'relocfs -f under svcman, as relocfs@.service runs it; a writer with its model; a rate-limited migration'
"$TOOLS/svcman" -m "$TEST_MNT" -t 300 -- "$RELOCFS" -f "$TEST_SRC" "$TEST_MNT" >"$SVC_OUT" 2>&1 &
SVC_PID=$!
wait_until 20 eval 'grep -q "^ready:" "$SVC_OUT"' || fail "no READY=1: $(cat "$SVC_OUT")"
assert_eq "ready: mounted" "$(grep '^ready:' "$SVC_OUT")" "svcman's check at READY=1"
mount_id=$(awk -v m="$TEST_MNT" '$5 == m { print $1 }' /proc/self/mountinfo)
writer_start --seed 14 --direct --flush-every 16 --delay-us 2000 \
	--size 64M --file "$TEST_MNT/disk.img" --size 4M --file "$TEST_MNT/small.img"
ctl migrate --to "$TEST_DST" --rate 8M >/dev/null

step 'the unit'"'"'s ExecReload, with a new binary installed in its place, hands over'
mkdir "$TEST_DIR/sbin"
cp "$RELOCFS" "$RELOCCTL" "$TEST_DIR/sbin/"
reload=$(sed -n 's/^ExecReload=//p' "$TOPDIR/dist/relocfs@.service.in")
reload=${reload//@SBINDIR@/$TEST_DIR/sbin}
reload=${reload//%f/$TEST_MNT}
read -ra reload_cmd <<<"$reload"
say "  $reload"
"${reload_cmd[@]}" >"$TEST_DIR/reload.out" 2>&1 || fail "reload failed: $(cat "$TEST_DIR/reload.out")"

step 'the writer keeps going without an error; the mount and the main process are the same'
sleep 2
writer_running || fail "the writer stopped: $(cat "$TEST_DIR/writer.log")"
assert_eq "$mount_id" "$(awk -v m="$TEST_MNT" '$5 == m { print $1 }' /proc/self/mountinfo)" "the mount's id"
! grep -q '^exited:\|^killed:' "$SVC_OUT" || fail "the service's main process ended: $(cat "$SVC_OUT")"
new=
for p in /proc/[0-9]*; do
	[ "$(readlink "$p/exe" 2>/dev/null)" = "$TEST_DIR/sbin/relocfs" ] && new=${p#/proc/}
done
[ -n "$new" ] || fail "no process runs the new binary '$TEST_DIR/sbin/relocfs'"

step 'the migration carries on in the new binary and cuts over; every byte is what the writer wrote'
ctl wait --timeout 240 >/dev/null
ctl cutover --timeout 60 >/dev/null
writer_stop 0
check_final "$TEST_MNT" disk.img small.img
check_final "$TEST_DST" disk.img small.img

step 'an unmount ends the service with status 0'
fusermount3 -u "$TEST_MNT"
wait_until 30 eval '! kill -0 $SVC_PID 2>/dev/null' || fail "svcman did not end: $(cat "$SVC_OUT")"
rc=0
wait "$SVC_PID" || rc=$?
SVC_PID=
assert_eq 0 "$rc" "svcman's exit status"
assert_eq "exited: status 0" "$(grep '^exited:\|^killed:' "$SVC_OUT")" "the service's end"

test_done
