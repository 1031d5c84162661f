#!/bin/bash
test_description='a running guest and its two disks (raw cache=none, qcow2 writeback) move to "another host": relocfs copies the disks over sshfs into the other host'"'"'s directory and hands the VM over with cutover --hook qmp-migrate to a second QEMU started with -incoming on that directory; the guest verifies every block it wrote before, during and after, and the source mount refuses to write the files again; another job on the same mount copies on meanwhile and cuts over after'
#
# The "other host" is a directory served by a private sshd on a loopback
# port and mounted here with sshfs (tests/host/lib_host.sh); the destination
# QEMU opens the files in that directory directly, as the other host would.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../vm/guest.sh"
. "$(dirname "$0")/lib_host.sh"

RATE=${RELOCFS_E2E_RATE:-4194304}
trap 'rc=$?; set +e; host_qemu_kill; (exit $rc); cleanup' EXIT

step 'the other host: sshd on a loopback port, its directory mounted over sshfs'
host_sshd_start
host_sshfs_mount
say "    sshd on 127.0.0.1:$SSHD_PORT serves '$OTHER' at '$DEST'"

step 'a guest with a raw and a qcow2 disk on the relocfs mount writes generations'
relocfs_mount
host_guest_prepare
host_src_start
host_wait_gen 3 90 || { host_console_tail; fail "the guest did not flush 3 generations"; }

step 'migrate --job vm1 to the sshfs directory while the guest writes, and another job to a local directory; both become ready'
head -c 8M /dev/urandom >"$TEST_MNT/other.img"
mkdir -p "$TEST_DIR/local"
gen_mig=$(host_last_gen)
"$RELOCCTL" -m "$TEST_MNT" migrate --job vm1 --to "$DEST" --rate "$RATE" disk.raw disk.qcow2 \
	>"$TEST_DIR/migrate.out" 2>&1 || fail "relocctl migrate: $(cat "$TEST_DIR/migrate.out")"
"$RELOCCTL" -m "$TEST_MNT" migrate --job other --to "$TEST_DIR/local" other.img \
	>>"$TEST_DIR/migrate.out" 2>&1 || fail "relocctl migrate --job other: $(cat "$TEST_DIR/migrate.out")"
sed 's/^/    /' "$TEST_DIR/migrate.out"
"$RELOCCTL" -m "$TEST_MNT" wait --timeout 150 >"$TEST_DIR/wait.out" 2>&1 ||
	fail "relocctl wait: $(tail -n 3 "$TEST_DIR/wait.out")"
gen_ready=$(host_last_gen)
[ "$gen_ready" -gt "$gen_mig" ] || fail "the guest flushed nothing during the copy ($gen_mig, $gen_ready)"
"$RELOCCTL" -m "$TEST_MNT" verify --job vm1 >"$TEST_DIR/verify.out" 2>&1 ||
	fail "relocctl verify: $(cat "$TEST_DIR/verify.out")"
say "    generations $gen_mig to $gen_ready flushed during the copy; $(cat "$TEST_DIR/verify.out")"

step 'a handle opened for writing on the source before the hand-off'
exec 7<>"$TEST_MNT/disk.qcow2"

step 'the destination QEMU listens (-incoming) with its disks in the other host'"'"'s directory'
host_dst_start
say "    destination QEMU $DST_PID on port $MIG_PORT"

step 'cutover --hook qmp-migrate: QEMU migrates, relocfs finishes the copies at the switch-over, records, continues'
gen_cut=$(host_last_gen)
"$RELOCCTL" -m "$TEST_MNT" cutover --job vm1 --hook "qmp-migrate:$SRC_QMP@tcp:127.0.0.1:$MIG_PORT" \
	--timeout 120 >"$TEST_DIR/cutover.out" 2>&1 &
cut_pid=$!
# while QEMU copies memory the other job's commands run; the hand-off is
# on vm1's entry of the record (after its files) and in vm1's status
vm1_started() {
	[ "$(awk '$1 == "job" { j = $5 } $1 == "handoff" { print j, $2 }' "$TEST_SRC/.relocfs/state")" = "vm1 started" ] &&
		[ "$("$RELOCCTL" -m "$TEST_MNT" status --json | jq -r '.jobs[] | select(.name == "vm1") | .handoff.state // ""')" = started ]
}
wait_until 60 vm1_started ||
	fail "no hand-off started on job vm1: $(cat "$TEST_SRC/.relocfs/state"; "$RELOCCTL" -m "$TEST_MNT" status --json)"
"$RELOCCTL" -m "$TEST_MNT" verify --job other >"$TEST_DIR/verify.out" 2>&1 ||
	fail "verify --job other during the hand-off: $(cat "$TEST_DIR/verify.out")"
rc=0
wait "$cut_pid" || rc=$?
[ "$rc" = 0 ] || { host_console_tail; fail "relocctl cutover: $(cat "$TEST_DIR/cutover.out")"; }
sed 's/^/    cutover: /' "$TEST_DIR/cutover.out"
grep -q "handed off 2 file(s) to 'tcp:127.0.0.1:$MIG_PORT'" "$TEST_DIR/cutover.out" ||
	fail "cutover did not report the hand-off: $(cat "$TEST_DIR/cutover.out")"

step 'the guest runs on in the destination QEMU and keeps flushing there'
gen_handed=$(host_last_gen)
wait_until 90 host_dst_gen_at_least $((gen_handed + 3)) ||
	{ host_console_tail; fail "the destination flushed no generation after $gen_handed in 90 s"; }
src_state=$(host_qmp "$SRC_QMP" '{"execute":"query-status"}' | jq -r '.return.status // empty' | head -n 1)
assert_eq postmigrate "$src_state" "the source QEMU's run state"

step 'the source mount refuses to write the handed-off files: new opens, open handles, truncates'
expect_fail dd if=/dev/zero of="$TEST_MNT/disk.raw" bs=4096 count=1 conv=notrunc status=none
case $ERR_OUT in *"Read-only file system"*) ;; *) fail "open for writing: '$ERR_OUT'" ;; esac
if printf 'x' >&7 2>"$TEST_DIR/w.err"; then
	fail "a write on a handle opened before the hand-off succeeded"
fi
grep -q "Read-only file system" "$TEST_DIR/w.err" || fail "write on the old handle: $(cat "$TEST_DIR/w.err")"
# with the writeback cache the write asked for the attributes with its
# handle, and was refused there; a seek to the end asks the same way
assert_eq EROFS "$(python3 -c 'import errno, os
try:
    os.lseek(7, 0, os.SEEK_END); print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])')" "lseek(SEEK_END) on the old handle"
exec 7>&-
expect_fail truncate -s 0 "$TEST_MNT/disk.raw"

step 'status names the host, the VM and the handed-off files'
"$RELOCCTL" -m "$TEST_MNT" status --json >"$TEST_DIR/status.json"
assert_eq "handed-off handed-off" "$(jq -r '[.files[] | select(.path == "disk.raw" or .path == "disk.qcow2") | .state] | join(" ")' "$TEST_DIR/status.json")" "file states"
assert_eq "vm1" "$(jq -r '.files[] | select(.path == "disk.raw") | .vm' "$TEST_DIR/status.json")" "the VM named"
assert_eq "$(hostname)" "$(jq -r '.host' "$TEST_DIR/status.json")" "this host"
assert_eq "handed-off" "$(jq -r '.jobs[] | select(.name == "vm1") | .state' "$TEST_DIR/status.json")" "job vm1"
"$RELOCCTL" -m "$TEST_MNT" status | sed 's/^/    status: /'

step 'the other job copied on, untouched: it cuts over on its own'
"$RELOCCTL" -m "$TEST_MNT" cutover --job other >"$TEST_DIR/other.out" 2>&1 ||
	fail "cutover --job other: $(cat "$TEST_DIR/other.out")"
sed 's/^/    /' "$TEST_DIR/other.out"
cmp "$TEST_MNT/other.img" "$TEST_DIR/local/other.img" || fail "other.img differs at its destination"

step 'STOP: the guest, now on the other host, verifies every block it wrote'
host_stop_guest
GUEST_PID=$DST_PID
guest_wait 120 || { host_console_tail; fail "the guest still runs 120 s after STOP"; }
DST_PID=
grep -aq '^VERIFY PASS' "$DST_LOG" || { host_console_tail 20; fail "the guest did not pass its own check"; }
G=$(sed -n 's/^VERIFY PASS gen=\([0-9][0-9]*\).*/\1/p' "$DST_LOG" | tr -d '\r')
assert_eq "$G" "$(host_last_gen)" "the verified generation is the last one flushed"

step "the other host's files hold exactly generation $G"
expected_image vda "$G" "$NBLK" "$TEST_DIR/expect_vda.raw"
expected_image vdb "$G" $((NBLK / 2)) "$TEST_DIR/expect_vdb.raw"
cmp "$TEST_DIR/expect_vda.raw" "$OTHER/disk.raw" >"$TEST_DIR/cmp.out" 2>&1 ||
	fail "raw image differs: $(cat "$TEST_DIR/cmp.out")"
# the guest has stopped: nothing writes the file while the two are read
cmp "$OTHER/disk.raw" "$TEST_MNT/disk.raw" >"$TEST_DIR/cmp.out" 2>&1 ||
	fail "reading through the mount does not give the other host's file: $(cat "$TEST_DIR/cmp.out")"
qemu-img check -q "$OTHER/disk.qcow2" || fail "qcow2 image does not check"
qemu-img compare -q -f raw -F qcow2 "$TEST_DIR/expect_vdb.raw" "$OTHER/disk.qcow2" ||
	fail "qcow2 image differs from generation $G"
say "    $G generations: $gen_mig-$gen_ready during the copy, $gen_cut-$gen_handed while QEMU moved memory, then at the destination"

step 'unmount: the record keeps the files sealed after a restart of relocfs'
host_qemu_kill
relocfs_umount
relocfs_mount
expect_fail dd if=/dev/zero of="$TEST_MNT/disk.raw" bs=4096 count=1 conv=notrunc status=none
case $ERR_OUT in *"Read-only file system"*) ;; *) fail "after a restart, open for writing: '$ERR_OUT'" ;; esac
relocfs_umount
test_done
