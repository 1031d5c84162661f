#!/bin/bash
test_description='a running TCG guest writes to a raw (cache=none) and a qcow2 disk and a raw disk without a node name on the mount; relocfs relocates them into RBD and cuts over with --hook qmp-rbd: the first two are handed to QEMU'"'"'s rbd driver (query-named-block-nodes shows the rbd nodes, QEMU closes the files on the mount), the third cannot be (QEMU reopens only named nodes): the cutover says so and the guest goes on through the mount; the guest verifies every block, rbd export holds what it last wrote'
# test: one-at-a-time ceph
#
# The guest writes generations 1, 2, 3, ... to vda, vdb and vdc until the
# host writes STOP to vdd (outside the mount), as in tests/vm/e2e_qmp.sh:
# generation g rewrites region A (blocks 0-63) and window (g-1) % 64 of
# region B (64 windows of 16 blocks from block 64) with pattern blocks
# (guest.sh), O_DIRECT and fsync, then prints "GEN g flushed".  The rest of
# each disk holds what the host wrote before boot (dev=hst, gen 0); the
# upper half of the qcow2 image was never written.  After STOP the guest
# reads everything back and prints "VERIFY PASS gen=G".
#
#   job a: disk.raw (-drive ...,cache=none,node-name=disk0: its file node is
#          QEMU's, which drops it with its last parent) and disk.qcow2
#          (-blockdev file and qcow2 nodes, as libvirt starts QEMU: the file
#          node is the monitor's, which the hand-over deletes): handed over
#          in one reopen
#   job b: auto.raw (-drive without node-name): QEMU refuses the reopen of
#          a node it named itself; the rbd node added is deleted again
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../reloc/lib_reloc.sh"
. "$TOPDIR/tests/ceph/lib_ceph.sh"
. "$TOPDIR/tests/ceph/lib_rbd.sh"
. "$TOPDIR/tests/vm/guest.sh"

require_cmd socat
QEMU_LOG=$TEST_DIR/console.log
QMP_SOCK=$TEST_DIR/qmp.sock		# relocfs's
QMP_TEST=$TEST_DIR/qmp-test.sock	# the test's own monitor
SIZE_MB=16
NBLK=$((SIZE_MB * 256))
trap 'rc=$?; set +e; guest_kill; (exit $rc); reloc_cleanup' EXIT

last_gen() { sed -n 's/^GEN \([0-9][0-9]*\) flushed.*/\1/p' "$QEMU_LOG" | tail -n 1; }
gen_at_least() {
	local g
	g=$(last_gen)
	[ -n "$g" ] && [ "$g" -ge "$1" ]
}
wait_gen() {	# wait_gen N SECS: a hang guard while the guest works
	local limit=$(($2 * 10)) i=0
	until gen_at_least "$1"; do
		kill -0 "$GUEST_PID" 2>/dev/null || return 1
		i=$((i + 1))
		[ $i -lt $limit ] || return 1
		sleep 0.1
	done
}
console_tail() {
	grep -aE 'GUEST:|^(GEN|VERIFY)|I/O error|Kernel panic' "$QEMU_LOG" | tail -n "${1:-10}" | sed 's/^/    | /'
}

# qmp CMD: QEMU's reply to CMD (one JSON line) on the test's own monitor;
# the connection stays open until the reply is in (a hang guard of 120 s)
qmp() {
	local out=$TEST_DIR/qmp.out i
	: >"$out"
	{
		echo '{"execute":"qmp_capabilities"}'
		echo "$1"
		for i in $(seq 1200); do
			[ "$(grep -c '"return"\|"error"' "$out")" -ge 2 ] && break
			sleep 0.1
		done
	} | socat - "UNIX-CONNECT:$QMP_TEST" >"$out"
	grep -v '"QMP"\|"event"' "$out" | sed -n 2p
}
block_nodes() { qmp '{"execute":"query-named-block-nodes","arguments":{"flat":true}}'; }
# node_field NODE FIELD: a field of a node of QEMU's, "" if there is no such node
node_field() { block_nodes | jq -r --arg n "$1" ".return[] | select(.\"node-name\" == \$n) | .$2"; }
# qemu_holds PATH: QEMU has PATH open
qemu_holds() {
	local fd
	for fd in /proc/"$GUEST_PID"/fd/*; do
		[ "$(readlink "$fd" 2>/dev/null)" = "$1" ] && return 0
	done
	return 1
}


step 'a kernel, an initramfs and the guest script; a one-node Ceph cluster'
guest_prepare_or_skip
command -v qemu-img >/dev/null || fail "qemu-img is not installed (tests/deps.sh)"
[ -n "$(find /usr/lib/x86_64-linux-gnu/qemu -name 'block-rbd.so' 2>/dev/null)" ] ||
	skip "QEMU's rbd driver is not installed (qemu-block-extra, tests/deps.sh)"
guest_gens_initrd "$TEST_DIR" "$NBLK" "vda vdb vdc" vdb vdd || fail "cannot build the initramfs"
ceph_start
relocfs_mount

step "two ${SIZE_MB} MiB raw images and a ${SIZE_MB} MiB qcow2 image (lower half written) on the mount"
pattern_blocks hst 0 0 "$NBLK" >"$TEST_MNT/disk.raw"
pattern_blocks hst 0 0 "$NBLK" >"$TEST_MNT/auto.raw"
pattern_blocks hst 0 0 $((NBLK / 2)) >"$TEST_DIR/fill.raw"
truncate -s "${SIZE_MB}M" "$TEST_DIR/fill.raw"
qemu-img convert -q -f raw -O qcow2 "$TEST_DIR/fill.raw" "$TEST_MNT/disk.qcow2"
rm -f "$TEST_DIR/fill.raw"
truncate -s 1M "$TEST_DIR/ctl.img"

step 'the guest boots from the mount and starts writing generations'
# the devices in this order are vda, vdb, vdc, vdd
GUEST_QEMU_ARGS=(-qmp "unix:$QMP_TEST,server=on,wait=off"
	-drive "if=none,id=d0,file=$TEST_MNT/disk.raw,format=raw,cache=none,aio=threads,node-name=disk0"
	-device virtio-blk-pci,drive=d0
	-blockdev "driver=file,filename=$TEST_MNT/disk.qcow2,node-name=disk1-file"
	-blockdev driver=qcow2,file=disk1-file,node-name=disk1
	-device virtio-blk-pci,drive=disk1
	-drive "if=none,id=d2,file=$TEST_MNT/auto.raw,format=raw,cache=none,aio=threads"
	-device virtio-blk-pci,drive=d2
	-drive "if=none,id=d3,file=$TEST_DIR/ctl.img,format=raw,cache=none,aio=threads,readonly=on"
	-device virtio-blk-pci,drive=d3)
guest_start "$QEMU_LOG" "$QMP_SOCK"
guest_wait_line "$QEMU_LOG" 'GUEST: ready' 180 || { console_tail 30; fail "the guest did not come up"; }
wait_gen 3 180 || { console_tail; fail "the guest did not flush 3 generations"; }
for f in disk.raw disk.qcow2 auto.raw; do
	qemu_holds "$TEST_MNT/$f" || fail "QEMU does not hold '$TEST_MNT/$f' open"
done

step 'migrate job a (disk.raw, disk.qcow2) and job b (auto.raw) into RBD while the guest writes'
ctl migrate --job a --to "$RBD_DEST" --ceph-conf "$CEPH_CONF" --rate 4M disk.raw disk.qcow2 >/dev/null
ctl migrate --job b --to "$RBD_DEST" --ceph-conf "$CEPH_CONF" --rate 4M auto.raw >/dev/null
ctl wait --timeout 300 >/dev/null
ctl verify --job a >/dev/null
ctl verify --job b >/dev/null
kill -0 "$GUEST_PID" 2>/dev/null || { console_tail; fail "qemu exited during the copy"; }

step 'two qmp-rbd hooks in one cutover are refused (exit 2): a job'"'"'s files go to one QEMU'
rc=0
ctl cutover --job a --hook "qmp-rbd:$QMP_SOCK" --hook "qmp-rbd:$QMP_TEST" >"$TEST_DIR/cutover-2.out" 2>&1 || rc=$?
assert_eq "2 relocctl: 'qmp-rbd:$QMP_TEST' is a second hook that hands QEMU over: the files of a job go to one QEMU; move each VM as a job of its own" \
	"$rc $(cat "$TEST_DIR/cutover-2.out")" "exit status and message"
assert_eq ready "$(file_state disk.raw)" "state of disk.raw"

step 'cutover --job a --hook qmp-rbd: both disks go to QEMU'"'"'s rbd driver'
gen_cut=$(last_gen)
ctl cutover --job a --hook "qmp-rbd:$QMP_SOCK" --timeout 120 >"$TEST_DIR/cutover-a.out" 2>&1 ||
	fail "relocctl cutover --job a: $(cat "$TEST_DIR/cutover-a.out")"
sed 's/^/    cutover: /' "$TEST_DIR/cutover-a.out"
grep -q "; 2 disk(s) on QEMU's rbd driver$" "$TEST_DIR/cutover-a.out" ||
	fail "the cutover does not report the hand-over: $(cat "$TEST_DIR/cutover-a.out")"
assert_eq "2 disk(s) on QEMU's rbd driver" "$(status_json | jq -r .last_cutover_handover)" \
	"last_cutover_handover in status --json"
assert_eq running "$(qmp '{"execute":"query-status"}' | jq -r .return.status)" "the VM's state"

step 'query-named-block-nodes: the format nodes now sit on rbd nodes of the images'
for n in 0 1; do
	assert_eq rbd "$(node_field "relocfs-rbd-$n" drv)" "driver of node relocfs-rbd-$n"
done
for pair in disk0:disk.raw disk1:disk.qcow2; do
	node=${pair%%:*} f=${pair#*:}
	file=$(node_field "$node" file)
	case $file in
	*'"driver": "rbd"'*"\"image\": \"$(image_of "$f")\""*|*"\"image\": \"$(image_of "$f")\""*'"driver": "rbd"'*) ;;
	*) fail "format node '$node' does not read '$(image_of "$f")' through rbd: $file" ;;
	esac
done
assert_eq "true false" "$(block_nodes | jq -r --arg r "$(image_of disk.raw)" --arg q "$(image_of disk.qcow2)" '
	def on(i): .return[] | select(.drv == "rbd" and (.file | contains("\"image\": \"" + i + "\"")));
	"\(on($r).cache.direct) \(on($q).cache.direct)"')" \
	"cache.direct of the rbd nodes of disk.raw (cache=none) and disk.qcow2 (writeback)"
assert_eq "" "$(node_field disk1-file drv)" "the qcow2 disk's old file node (the monitor's)"
qmp '{"execute":"query-block"}' >"$TEST_DIR/query-block.json"
jq -r '.return[] | select(.inserted) | "    query-block: \(if .device == "" then .qdev else .device end): \(.inserted.drv) \(.inserted.file)"' \
	"$TEST_DIR/query-block.json"
assert_eq "disk0 disk1" "$(jq -r '[.return[] | select(.inserted.file // "" | test("\"driver\": \"rbd\"")) |
	.inserted."node-name"] | sort | join(" ")' "$TEST_DIR/query-block.json")" "the devices query-block shows on rbd"

step 'QEMU no longer holds the two files on the mount open; auto.raw it still does'
for f in disk.raw disk.qcow2; do
	! qemu_holds "$TEST_MNT/$f" || fail "QEMU still holds '$TEST_MNT/$f' open after the hand-over"
done
qemu_holds "$TEST_MNT/auto.raw" || fail "QEMU no longer holds '$TEST_MNT/auto.raw'"

step 'the guest keeps flushing generations, now through its rbd driver'
wait_gen $((gen_cut + 3)) 180 || { console_tail; fail "no generation after $gen_cut: guest not resumed?"; }

step 'cutover --job b --hook qmp-rbd: QEMU refuses the reopen, the cutover switches and says so'
gen_cut=$(last_gen)
rc=0
ctl cutover --job b --hook "qmp-rbd:$QMP_SOCK" --timeout 120 >"$TEST_DIR/cutover-b.out" 2>&1 || rc=$?
sed 's/^/    cutover: /' "$TEST_DIR/cutover-b.out"
assert_eq 1 "$rc" "exit status of the cutover whose hand-over failed"
grep -q "switched 1 file(s) to '$RBD_DEST" "$TEST_DIR/cutover-b.out" ||
	fail "the cutover does not say that it switched: $(cat "$TEST_DIR/cutover-b.out")"
grep -q "but the hand-over to QEMU's rbd driver failed, the VM runs on the mount, served from RBD: .*blockdev-reopen: .*node-name.*auto.raw' has no name of its own" \
	"$TEST_DIR/cutover-b.out" || fail "the cutover does not say why the hand-over failed: $(cat "$TEST_DIR/cutover-b.out")"
assert_eq done "$(file_state auto.raw)" "state of auto.raw"
case $(status_json | jq -r .last_cutover_handover) in
failed,*) ;;
*) fail "status --json does not report the failed hand-over: $(status_json | jq .last_cutover_handover)" ;;
esac
ctl status | grep -q "^hand-over to QEMU's rbd driver: failed, the VM runs on the mount" ||
	fail "relocctl status does not report the failed hand-over: $(ctl status)"
grep -q "hand-over to QEMU's rbd driver failed" "$TEST_DIR/relocfs.log" ||
	fail "relocfs did not log the failed hand-over"

step 'the rbd node added for auto.raw was deleted again; QEMU runs on the mount for it'
assert_eq "relocfs-rbd-0 relocfs-rbd-1" \
	"$(block_nodes | jq -r '[.return[] | select(.drv == "rbd") | ."node-name"] | sort | join(" ")')" \
	"QEMU's rbd nodes"
qemu_holds "$TEST_MNT/auto.raw" || fail "QEMU no longer holds '$TEST_MNT/auto.raw'"
assert_eq running "$(qmp '{"execute":"query-status"}' | jq -r .return.status)" "the VM's state"
wait_gen $((gen_cut + 3)) 180 || { console_tail; fail "no generation after $gen_cut: guest not resumed?"; }

step 'STOP: the guest verifies every block it wrote and powers off'
printf 'STOP' | dd of="$TEST_DIR/ctl.img" conv=notrunc,fsync status=none
guest_wait 300 || { console_tail; fail "the guest still runs 300 s after STOP"; }
console_tail 3
grep -aq '^VERIFY PASS' "$QEMU_LOG" || { console_tail 20; fail "the guest did not pass its own check"; }
assert_eq 0 "$GUEST_RC" "qemu's exit status"
G=$(sed -n 's/^VERIFY PASS gen=\([0-9][0-9]*\).*/\1/p' "$QEMU_LOG" | tr -d '\r')
assert_eq "$G" "$(last_gen)" "the verified generation is the last one flushed"

step "rbd export of the three images holds generation $G"
mkdir -p "$TEST_DIR/export"
for f in disk.raw disk.qcow2 auto.raw; do
	rbd_export_to "$(image_of "$f")" "$TEST_DIR/export/$f"
done
expected_image vda "$G" "$NBLK" "$TEST_DIR/expect_vda.raw"
expected_image vdb "$G" $((NBLK / 2)) "$TEST_DIR/expect_vdb.raw"
expected_image vdc "$G" "$NBLK" "$TEST_DIR/expect_vdc.raw"
cmp "$TEST_DIR/expect_vda.raw" "$TEST_DIR/export/disk.raw" >"$TEST_DIR/cmp.out" 2>&1 ||
	fail "the image of disk.raw differs from generation $G: $(cat "$TEST_DIR/cmp.out")"
cmp "$TEST_DIR/expect_vdc.raw" "$TEST_DIR/export/auto.raw" >"$TEST_DIR/cmp.out" 2>&1 ||
	fail "the image of auto.raw differs from generation $G: $(cat "$TEST_DIR/cmp.out")"
qemu-img check -q "$TEST_DIR/export/disk.qcow2" || fail "the image of disk.qcow2 does not check"
qemu-img compare -q -f raw -F qcow2 "$TEST_DIR/expect_vdb.raw" "$TEST_DIR/export/disk.qcow2" ||
	fail "the image of disk.qcow2 differs from generation $G"
relocfs_umount
test_done
