#!/bin/bash
test_description='a QEMU guest with a cache=none raw disk on a relocfs mount writes, flushes and reads it back'
# No relocation here: the mirror alone must carry a guest's O_DIRECT I/O
# (QEMU cache=none opens the image O_DIRECT and probes its alignment).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/guest.sh"

QEMU_LOG=$TEST_DIR/console.log
trap 'rc=$?; set +e; guest_kill; (exit $rc); cleanup' EXIT

step 'a kernel and an initramfs for the guest'
guest_prepare_or_skip

cat >"$TEST_DIR/script" <<EOF
$GUEST_PATTERN_SH
fail() { echo "SMOKE FAIL: \$*"; exit 1; }
[ -b /dev/vda ] || fail "no /dev/vda"
# what the host wrote through the mount before boot
dd if=/dev/vda bs=4096 skip=1000 count=2 iflag=direct 2>/dev/null >/tmp/host
blocks vda 0 1000 2 | cmp -s - /tmp/host || fail "host-written blocks 1000-1001 differ"
# 3 generations over 256 blocks, each O_DIRECT and flushed, then read back O_DIRECT
for g in 1 2 3; do
	blocks vda \$g 0 256 >/tmp/gen
	dd if=/tmp/gen of=/dev/vda bs=4096 oflag=direct conv=fsync,notrunc 2>/tmp/dd.err ||
		fail "write of generation \$g: \$(cat /tmp/dd.err)"
	echo "GEN vda \$g flushed"
done
echo 3 >/proc/sys/vm/drop_caches
dd if=/dev/vda bs=4096 count=256 iflag=direct 2>/dev/null | cmp -s - /tmp/gen || fail "read-back differs"
dmesg | grep -qi 'I/O error' && fail "the kernel logged I/O errors: \$(dmesg | grep -i 'I/O error' | head -n 1)"
echo "SMOKE PASS"
EOF

GUEST_INITRD=$TEST_DIR/initrd.gz
guest_initrd "$TEST_DIR/script" "$GUEST_INITRD" || fail "cannot build the initramfs"

step 'a 16 MiB raw image on the mount, with host-written blocks at 1000-1001'
relocfs_mount
truncate -s 16M "$TEST_MNT/disk.raw"
pattern_blocks vda 0 1000 2 | dd of="$TEST_MNT/disk.raw" bs=4096 seek=1000 conv=notrunc,fsync status=none

step 'the guest boots with the image as a cache=none virtio disk and checks its I/O'
t0=$(date +%s.%N)
guest_start "$QEMU_LOG" "" "file=$TEST_MNT/disk.raw,if=virtio,format=raw,cache=none,aio=threads"
guest_wait 150 || { tail -n 30 "$QEMU_LOG"; fail "the guest still runs after 150 s"; }
t1=$(date +%s.%N)
say "    guest ran for $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s; console tail:"
grep -E '^(GUEST|GEN|SMOKE)' "$QEMU_LOG" | tail -n 8 | sed 's/^/    | /'
grep -q '^SMOKE PASS' "$QEMU_LOG" ||
	fail "the guest did not pass: $(grep -E '^SMOKE|I/O error|GUEST:' "$QEMU_LOG" | head -n 5 | tr '\n' ' ')"
assert_eq 0 "$GUEST_RC" "qemu's exit status"

step 'the host sees the last generation through the mount and in the source file'
pattern_blocks vda 3 0 256 >"$TEST_DIR/expect"
cmp -n $((256 * 4096)) "$TEST_DIR/expect" "$TEST_MNT/disk.raw" || fail "mount view differs from generation 3"
relocfs_umount
cmp -n $((256 * 4096)) "$TEST_DIR/expect" "$TEST_SRC/disk.raw" || fail "source file differs from generation 3"
assert_eq 16777216 "$(stat -c %s "$TEST_SRC/disk.raw")" "image size"

test_done
