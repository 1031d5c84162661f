#!/bin/bash
test_description='a running QEMU guest keeps writing while relocfs relocates its raw (cache=none) and qcow2 (cache=writeback) images and cuts over with the qmp hook; afterwards the guest and the host find exactly what the guest last wrote'
#
# The guest writes generations 1, 2, 3, ... to both disks until the host
# tells it to stop (the word STOP on a third, small disk outside the mount).
# Generation g rewrites region A (blocks 0-63) and window (g-1) % 64 of region
# B (64 windows of 16 blocks from block 64), each block a pattern block
# (guest.sh) naming its disk, index and generation, with O_DIRECT and an
# fsync; then the guest prints "GEN g flushed".  The rest of each image holds
# what the host wrote before boot (dev=hst, gen 0), and in the qcow2 image the
# upper half was never written (unallocated, reads as zeros).
#
# Meanwhile the host migrates both images (rate-limited, so that the guest
# writes during the copy), waits for them, and cuts over with --hook
# qmp:SOCKET; the guest must go on writing afterwards.  After STOP the guest
# reads everything back with O_DIRECT and prints "VERIFY PASS gen=G", and
# powers off.  The host then builds the images the guest should have left
# (awk, same formula) and compares them with the destination files, the
# mount's view, and each other (qemu-img compare, qemu-img check).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/guest.sh"

QEMU_LOG=$TEST_DIR/console.log
QMP_SOCK=$TEST_DIR/qmp.sock
DEST=$TEST_DIR/dest
SIZE_MB=32
NBLK=$((SIZE_MB * 256))			# 4 KiB blocks per image
RATE=${RELOCFS_E2E_RATE:-4194304}	# bytes/s for the copy: ~12 s for both images
trap 'rc=$?; set +e; guest_kill; (exit $rc); cleanup' EXIT

last_gen() {
	sed -n 's/^GEN \([0-9][0-9]*\) flushed.*/\1/p' "$QEMU_LOG" | tail -n 1
}
gen_at_least() {
	local g
	g=$(last_gen)
	[ -n "$g" ] && [ "$g" -ge "$1" ]
}
wait_gen() {	# wait_gen N SECS: hang guard while the guest works
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
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

step 'a kernel, an initramfs and the guest script'
t_start=$(date +%s.%N)
guest_prepare_or_skip
[ -x "$RELOCCTL" ] || fail "'$RELOCCTL' is not built (run make)"
command -v qemu-img >/dev/null || fail "qemu-img is not installed (tests/deps.sh)"

guest_gens_initrd "$TEST_DIR" "$NBLK" "vda vdb" vdb vdc || fail "cannot build the initramfs"

step "a ${SIZE_MB} MiB raw image and a ${SIZE_MB} MiB qcow2 image (lower half written) on the mount"
relocfs_mount
mkdir -p "$DEST"
pattern_blocks hst 0 0 "$NBLK" >"$TEST_MNT/disk.raw"
pattern_blocks hst 0 0 $((NBLK / 2)) >"$TEST_DIR/fill.raw"
truncate -s "${SIZE_MB}M" "$TEST_DIR/fill.raw"
qemu-img convert -q -f raw -O qcow2 "$TEST_DIR/fill.raw" "$TEST_MNT/disk.qcow2"
rm -f "$TEST_DIR/fill.raw"
truncate -s 1M "$TEST_DIR/ctl.img"
qemu-img check -q "$TEST_MNT/disk.qcow2" || fail "the new qcow2 image does not check"

step 'the guest boots from the mount and starts writing generations'
guest_start "$QEMU_LOG" "$QMP_SOCK" \
	"file=$TEST_MNT/disk.raw,if=virtio,format=raw,cache=none,aio=threads" \
	"file=$TEST_MNT/disk.qcow2,if=virtio,format=qcow2,cache=writeback" \
	"file=$TEST_DIR/ctl.img,if=virtio,format=raw,cache=none,aio=threads,readonly=on"
t_boot=$GUEST_START_S
guest_wait_line "$QEMU_LOG" 'GUEST: ready' 90 || { console_tail 30; fail "the guest did not come up"; }
say "    guest up after $(elapsed "$t_boot") s"
wait_gen 3 90 || { console_tail; fail "the guest did not flush 3 generations"; }
g0=$(last_gen)
say "    generation $g0 flushed $(elapsed "$t_boot") s after start"

step 'relocctl migrate --to DEST while the guest writes'
t_mig=$(date +%s.%N)
gen_mig=$(last_gen)
"$RELOCCTL" -m "$TEST_MNT" migrate --to "$DEST" --rate "$RATE" >"$TEST_DIR/migrate.out" 2>&1 ||
	fail "relocctl migrate: $(cat "$TEST_DIR/migrate.out")"

step 'relocctl wait: both images ready; the guest went on writing'
"$RELOCCTL" -m "$TEST_MNT" wait --timeout 150 >"$TEST_DIR/wait.out" 2>&1 ||
	fail "relocctl wait: $(tail -n 3 "$TEST_DIR/wait.out")"
gen_ready=$(last_gen)
say "    copy done in $(elapsed "$t_mig") s; the guest flushed generations $gen_mig to $gen_ready meanwhile"
kill -0 "$GUEST_PID" 2>/dev/null || { console_tail; fail "qemu exited during the copy"; }
grep -aq '^VERIFY FAIL' "$QEMU_LOG" && { console_tail; fail "the guest failed during the copy"; }

step 'relocctl verify: the destination equals the live view while the guest writes'
"$RELOCCTL" -m "$TEST_MNT" verify >"$TEST_DIR/verify.out" 2>&1 ||
	fail "relocctl verify: $(cat "$TEST_DIR/verify.out")"
sed 's/^/    verify: /' "$TEST_DIR/verify.out"

step 'relocctl cutover --hook qmp:SOCKET pauses the guest, switches, resumes'
gen_cut=$(last_gen)
"$RELOCCTL" -m "$TEST_MNT" cutover --hook "qmp:$QMP_SOCK" --timeout 60 >"$TEST_DIR/cutover.out" 2>&1 ||
	fail "relocctl cutover: $(cat "$TEST_DIR/cutover.out")"
sed 's/^/    cutover: /' "$TEST_DIR/cutover.out"
grep -a 'hook' "$TEST_DIR/relocfs.log" | tail -n 4 | sed 's/^/    relocfs: /' || true

step 'the guest runs again and keeps flushing generations on the destination'
wait_gen $((gen_cut + 3)) 60 || { console_tail; fail "no generation after $gen_cut within 60 s of the cutover: guest not resumed?"; }
say "    generation $(last_gen) flushed after the cutover"

step 'STOP: the guest verifies everything it wrote and powers off'
printf 'STOP' | dd of="$TEST_DIR/ctl.img" conv=notrunc,fsync status=none
guest_wait 120 || { console_tail; fail "the guest still runs 120 s after STOP"; }
console_tail 4
grep -aq '^VERIFY PASS' "$QEMU_LOG" || { console_tail 20; fail "the guest did not pass its own check"; }
assert_eq 0 "$GUEST_RC" "qemu's exit status"
G=$(sed -n 's/^VERIFY PASS gen=\([0-9][0-9]*\).*/\1/p' "$QEMU_LOG" | tr -d '\r')
assert_eq "$G" "$(last_gen)" "the verified generation is the last one flushed"

step 'the destination images hold exactly what the guest last wrote'
for f in disk.raw disk.qcow2; do
	[ -f "$DEST/$f" ] || fail "'$DEST/$f' does not exist after the cutover"
done
expected_image vda "$G" "$NBLK" "$TEST_DIR/expect_vda.raw"
expected_image vdb "$G" $((NBLK / 2)) "$TEST_DIR/expect_vdb.raw"
cmp "$TEST_DIR/expect_vda.raw" "$DEST/disk.raw" >"$TEST_DIR/cmp.out" 2>&1 ||
	fail "destination raw image differs from generation $G: $(cat "$TEST_DIR/cmp.out")"
qemu-img check -q "$DEST/disk.qcow2" || fail "destination qcow2 image does not check"
qemu-img compare -q -f raw -F qcow2 "$TEST_DIR/expect_vdb.raw" "$DEST/disk.qcow2" ||
	fail "destination qcow2 image differs from generation $G: $(qemu-img compare -f raw -F qcow2 "$TEST_DIR/expect_vdb.raw" "$DEST/disk.qcow2" 2>&1 | head -n 1)"

step "the mount's view equals the destination (qemu-img compare)"
qemu-img compare -q -f raw -F raw "$DEST/disk.raw" "$TEST_MNT/disk.raw" ||
	fail "raw: destination and mount differ: $(qemu-img compare -f raw -F raw "$DEST/disk.raw" "$TEST_MNT/disk.raw" 2>&1 | head -n 1)"
qemu-img compare -q -f qcow2 -F qcow2 "$DEST/disk.qcow2" "$TEST_MNT/disk.qcow2" ||
	fail "qcow2: destination and mount differ"

step 'after unmounting, the destination files still hold generation '"${G}"
relocfs_umount
cmp -s "$TEST_DIR/expect_vda.raw" "$DEST/disk.raw" || fail "raw image changed by the unmount"
qemu-img compare -q -f raw -F qcow2 "$TEST_DIR/expect_vdb.raw" "$DEST/disk.qcow2" ||
	fail "qcow2 image changed by the unmount"
say "    $G generations in all ($gen_mig-$gen_ready during the copy, cutover after $gen_cut); test took $(elapsed "$t_start") s"

test_done
