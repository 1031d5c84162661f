#!/bin/bash
test_description='a running guest and its two disks (raw cache=none, qcow2 writeback) move to "another host" through CephFS, storage both hosts mount: relocfs copies the disks into the CephFS (ceph-fuse) and hands the VM over with cutover --hook qmp-migrate to a second QEMU that opens them through a second ceph-fuse client, as the other host would; the guest verifies every block, the source mount refuses to write the files again'
# test: one-at-a-time ceph
#
# The two hosts are two ceph-fuse clients of one throw-away cluster
# (tests/ceph/lib_ceph.sh): this host's at $DEST, the other host's at
# $OTHER.  The guest and the checks are those of tests/host/handoff_qmp.sh.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../vm/guest.sh"
. "$(dirname "$0")/../host/lib_host.sh"
. "$TOPDIR/tests/ceph/lib_ceph.sh"

RATE=${RELOCFS_E2E_RATE:-4194304}
trap 'rc=$?; set +e; host_qemu_kill; (exit $rc); cleanup' EXIT

step 'a one-node Ceph cluster with a CephFS, mounted by two clients: this host and the other'
ceph_start mds
ceph_fuse_mount "$DEST" ${RELOCFS_CEPHFS_SRC_OPTS:-}
ceph_fuse_mount "$OTHER"
echo probe >"$DEST/probe"
assert_eq probe "$(cat "$OTHER/probe")" "a file written by one client, read by the other"
rm -f "$DEST/probe"

step 'a guest with a raw and a qcow2 disk on the relocfs mount writes generations'
relocfs_mount
host_guest_prepare
host_src_start
host_wait_gen 3 90 || { host_console_tail; fail "the guest did not flush 3 generations"; }

step 'migrate --job vm1 into the CephFS while the guest writes; it becomes ready and verifies'
gen_mig=$(host_last_gen)
"$RELOCCTL" -m "$TEST_MNT" migrate --job vm1 --to "$DEST" --rate "$RATE" disk.raw disk.qcow2 \
	>"$TEST_DIR/migrate.out" 2>&1 || fail "relocctl migrate: $(cat "$TEST_DIR/migrate.out")"
"$RELOCCTL" -m "$TEST_MNT" wait --timeout 150 >"$TEST_DIR/wait.out" 2>&1 ||
	fail "relocctl wait: $(tail -n 3 "$TEST_DIR/wait.out")"
"$RELOCCTL" -m "$TEST_MNT" verify --job vm1 >"$TEST_DIR/verify.out" 2>&1 ||
	fail "relocctl verify: $(cat "$TEST_DIR/verify.out")"
gen_ready=$(host_last_gen)
say "    generations $gen_mig to $gen_ready flushed during the copy; $(cat "$TEST_DIR/verify.out")"

step 'the destination QEMU listens (-incoming) with its disks on the other client of the CephFS'
host_dst_start
say "    destination QEMU $DST_PID on port $MIG_PORT"

step 'cutover --hook qmp-migrate: QEMU migrates, relocfs finishes the copies at the switch-over, records, continues'
"$RELOCCTL" -m "$TEST_MNT" cutover --job vm1 --hook "qmp-migrate:$SRC_QMP@tcp:127.0.0.1:$MIG_PORT" \
	--timeout 120 >"$TEST_DIR/cutover.out" 2>&1 || { host_console_tail; fail "relocctl cutover: $(cat "$TEST_DIR/cutover.out")"; }
sed 's/^/    cutover: /' "$TEST_DIR/cutover.out"
grep -q "handed off 2 file(s) to 'tcp:127.0.0.1:$MIG_PORT'" "$TEST_DIR/cutover.out" ||
	fail "cutover did not report the hand-off: $(cat "$TEST_DIR/cutover.out")"

step 'the guest runs on in the destination QEMU and keeps flushing there; the source mount refuses writes'
gen_handed=$(host_last_gen)
wait_until 90 host_dst_gen_at_least $((gen_handed + 3)) ||
	{ host_console_tail; fail "the destination flushed no generation after $gen_handed in 90 s"; }
assert_eq postmigrate "$(host_qmp "$SRC_QMP" '{"execute":"query-status"}' | jq -r '.return.status // empty' | head -n 1)" \
	"the source QEMU's run state"
expect_fail dd if=/dev/zero of="$TEST_MNT/disk.raw" bs=4096 count=1 conv=notrunc status=none
case $ERR_OUT in *"Read-only file system"*) ;; *) fail "open for writing: '$ERR_OUT'" ;; esac
assert_eq "handed-off" "$("$RELOCCTL" -m "$TEST_MNT" status --json | jq -r '.jobs[] | select(.name == "vm1") | .state')" "job vm1"

step 'STOP: the guest, now on the other host, verifies every block it wrote'
host_stop_guest
GUEST_PID=$DST_PID
guest_wait 120 || { host_console_tail; fail "the guest still runs 120 s after STOP"; }
DST_PID=
grep -aq '^VERIFY PASS' "$DST_LOG" || { host_console_tail 20; fail "the guest did not pass its own check"; }
G=$(sed -n 's/^VERIFY PASS gen=\([0-9][0-9]*\).*/\1/p' "$DST_LOG" | tr -d '\r')
assert_eq "$G" "$(host_last_gen)" "the verified generation is the last one flushed"

step "the files in the CephFS hold exactly generation $G, seen from the other host's client"
expected_image vda "$G" "$NBLK" "$TEST_DIR/expect_vda.raw"
expected_image vdb "$G" $((NBLK / 2)) "$TEST_DIR/expect_vdb.raw"
cmp "$TEST_DIR/expect_vda.raw" "$OTHER/disk.raw" >"$TEST_DIR/cmp.out" 2>&1 ||
	fail "raw image differs: $(cat "$TEST_DIR/cmp.out")"
qemu-img check -q "$OTHER/disk.qcow2" || fail "qcow2 image does not check"
qemu-img compare -q -f raw -F qcow2 "$TEST_DIR/expect_vdb.raw" "$OTHER/disk.qcow2" ||
	fail "qcow2 image differs from generation $G"

step "this host's client: what it reads of the handed-off files, before and after its caches are dropped"
for f in disk.raw disk.qcow2; do
	if cmp -s "$OTHER/$f" "$DEST/$f"; then
		say "    $f: this host's client reads what the other host wrote"
	else
		say "    $f: this host's client reads older bytes than the other host wrote"
	fi
done
host_qemu_kill
relocfs_umount
sync
echo 3 >/proc/sys/vm/drop_caches
for f in disk.raw disk.qcow2; do
	cmp "$OTHER/$f" "$DEST/$f" >"$TEST_DIR/cmp.out" 2>&1 ||
		fail "$f: this host's client reads other bytes than the other host's, its caches dropped: $(cat "$TEST_DIR/cmp.out")"
done
say "    both files: the same bytes from both clients once this host's caches are dropped"
test_done
