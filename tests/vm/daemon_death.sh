#!/bin/bash
test_description='relocfs is killed under a running QEMU guest in the middle of a migration (disk with werror=stop,rerror=stop): QEMU stops the guest on the error instead of failing its I/O; after the README procedure (restart relocfs with the same arguments, restart the VM) every flushed write is there, the migration carries on and cuts over'
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/guest.sh"
. "$(dirname "$0")/../reloc/lib_reloc.sh"
require_cmd socat

QEMU_LOG=$TEST_DIR/console.log
QMP_SOCK=$TEST_DIR/qmp.sock
NBLK=256
trap 'rc=$?; set +e; guest_kill; (exit $rc); reloc_cleanup' EXIT

# Why the VM is restarted and not just continued: QEMU's descriptors of the
# images belong to the dead FUSE connection and fail for good (ENOTCONN); cont
# retries on them and stops again, and blockdev-reopen, which would open the
# file anew, first flushes the old descriptor and is refused.

# qmp JSON...: each JSON command on a fresh QMP connection; the replies, one per line
qmp() {
	{
		echo '{"execute":"qmp_capabilities"}'
		for c in "$@"; do echo "$c"; done
		sleep 0.5
	} | socat -t 5 - "UNIX-CONNECT:$QMP_SOCK" | grep -v '"QMP"\|"event"' | sed 1d
}
vm_status() { qmp '{"execute":"query-status"}' | jq -r '.return.status'; }
last_gen() { sed -n 's/^GEN \([0-9][0-9]*\) flushed.*/\1/p' "$QEMU_LOG" | tail -n 1; }
wait_gen() {	# wait_gen N SECS
	local limit=$(($2 * 10)) i=0 g
	while g=$(last_gen); [ -z "$g" ] || [ "$g" -lt "$1" ]; do
		kill -0 "$GUEST_PID" 2>/dev/null || return 1
		i=$((i + 1))
		[ $i -lt $limit ] || return 1
		sleep 0.1
	done
}
console_tail() { grep -aE 'GUEST:|^(GEN|VERIFY)|I/O error|Kernel panic' "$QEMU_LOG" | tail -n "${1:-10}" | sed 's/^/    | /'; }

step 'a guest that writes generation g to block g % 256 of a raw disk on the mount, with O_DIRECT and fsync'
guest_prepare_or_skip
cat >"$TEST_DIR/script.sh" <<EOF
$GUEST_PATTERN_SH
g=0
while :; do
	g=\$((g + 1))
	blocks vda \$g \$((g % $NBLK)) 1 >/tmp/a
	dd if=/tmp/a of=/dev/vda bs=4096 seek=\$((g % $NBLK)) oflag=direct conv=fsync,notrunc 2>/tmp/dd.err ||
		{ echo "VERIFY FAIL: generation \$g: \$(cat /tmp/dd.err)"; exit 1; }
	echo "GEN \$g flushed"
	dd if=/dev/vdb bs=512 count=1 iflag=direct 2>/dev/null | grep -q STOP && break
done
bad=0
k=\$((g > $NBLK - 1 ? g - $NBLK + 1 : 1))
while [ \$k -le \$g ]; do
	blocks vda \$k \$((k % $NBLK)) 1 >/tmp/exp
	dd if=/dev/vda bs=4096 skip=\$((k % $NBLK)) count=1 iflag=direct 2>/dev/null | cmp -s - /tmp/exp ||
		{ echo "VERIFY FAIL: block \$((k % $NBLK)) lacks generation \$k"; bad=1; }
	k=\$((k + 1))
done
[ \$bad = 0 ] && echo "VERIFY PASS gen=\$g"
EOF
GUEST_INITRD=$TEST_DIR/initrd.gz
guest_initrd "$TEST_DIR/script.sh" "$GUEST_INITRD" || fail "cannot build the initramfs"

step 'boot it with the disk (32 MiB, written) on the mount, werror=stop,rerror=stop, named nodes'
relocfs_mount
head -c 32M /dev/urandom >"$TEST_MNT/disk.raw"
truncate -s 1M "$TEST_DIR/ctl.img"
GUEST_QEMU_ARGS=(
	-blockdev "driver=file,node-name=proto0,filename=$TEST_MNT/disk.raw,cache.direct=on,aio=threads"
	-blockdev "driver=raw,node-name=disk0,file=proto0"
	-device "virtio-blk-pci,drive=disk0,werror=stop,rerror=stop"
	-drive "file=$TEST_DIR/ctl.img,if=virtio,format=raw,cache=none,readonly=on")
guest_start "$QEMU_LOG" "$QMP_SOCK"
guest_wait_line "$QEMU_LOG" 'GUEST: ready' 90 || { console_tail 30; fail "the guest did not come up"; }
wait_gen 5 90 || { console_tail; fail "the guest did not flush 5 generations"; }

step 'migrate slowly; kill -9 relocfs in the middle of the copy: QEMU stops the guest on the error'
ctl migrate --to "$TEST_DST" --rate 2M >/dev/null
wait_until 30 eval '[ "$(file_field disk.raw bytes_copied)" -gt 0 ]' || fail "the copy did not start"
kill_daemon
g_kill=$(last_gen)
wait_until 30 eval '[ "$(vm_status)" = io-error ]' || fail "QEMU did not stop on the I/O error: $(vm_status)"
say "    killed after generation $g_kill; QEMU status: $(vm_status)"

step 'restart relocfs with the same arguments: the migration carries on; cont alone does not revive the disk'
relocfs_mount
say "    migration after the restart: $(file_state disk.raw)"
qmp '{"execute":"cont"}' >/dev/null
sleep 3
st=$(vm_status)
say "    after cont: $st, last generation $(last_gen)"
grep -aq 'I/O error\|VERIFY FAIL' "$QEMU_LOG" && { console_tail; fail "the guest saw an I/O error"; }

step 'every generation the guest saw flushed is on the disk, read through the restarted mount'
# block b holds the last generation k <= g_kill with k % NBLK == b, or the
# generation after g_kill if the guest flushed it before it could print so
first=$((g_kill > NBLK - 1 ? g_kill - NBLK + 1 : 1))
for k in $(seq "$first" "$g_kill"); do
	b=$((k % NBLK))
	got=$(dd if="$TEST_MNT/disk.raw" bs=4096 skip=$b count=1 iflag=direct 2>/dev/null | head -c 41)
	case $got in
	"$(pattern_blocks vda "$k" "$b" 1 | head -c 41)") ;;
	"$(pattern_blocks vda $((g_kill + 1)) "$b" 1 | head -c 41)") [ $(((g_kill + 1) % NBLK)) = $b ] ||
		fail "block $b: '$got'" ;;
	*) fail "block $b lacks flushed generation $k: '$got'" ;;
	esac
done
say "    generations $first to $g_kill are there"

step 'the VM is restarted (a new QEMU process opens the files of the new mount) and writes again'
qmp '{"execute":"quit"}' >/dev/null
guest_wait 30 || fail "QEMU did not quit"
mv "$QEMU_LOG" "$TEST_DIR/console1.log"
guest_start "$QEMU_LOG" "$QMP_SOCK"
guest_wait_line "$QEMU_LOG" 'GUEST: ready' 90 || { console_tail 30; fail "the guest did not come up again"; }
wait_gen 5 90 || { console_tail; fail "the restarted guest did not flush 5 generations"; }

step 'the migration finishes and cuts over with the qmp hook while the guest writes'
ctl wait --timeout 120 >/dev/null
g_cut=$(last_gen)
ctl cutover --hook "qmp:$QMP_SOCK" --timeout 60 >"$TEST_DIR/cutover.out" 2>&1 ||
	fail "cutover: $(cat "$TEST_DIR/cutover.out")"
sed 's/^/    /' "$TEST_DIR/cutover.out"
wait_gen $((g_cut + 5)) 60 || { console_tail; fail "the guest did not go on after the cutover"; }

step 'STOP: the guest verifies what it wrote; the destination holds it'
printf 'STOP' | dd of="$TEST_DIR/ctl.img" conv=notrunc,fsync status=none
guest_wait 120 || { console_tail; fail "the guest still runs 120 s after STOP"; }
console_tail 3
grep -aq '^VERIFY PASS' "$QEMU_LOG" || { console_tail 20; fail "the guest did not pass its own check"; }
g=$(sed -n 's/^VERIFY PASS gen=\([0-9][0-9]*\).*/\1/p' "$QEMU_LOG" | tr -d '\r')
b=$((g % NBLK))
assert_eq "$(pattern_blocks vda "$g" "$b" 1 | head -c 41)" \
	"$(dd if="$TEST_DST/disk.raw" bs=4096 skip=$b count=1 2>/dev/null | head -c 41)" "the last generation on DEST"
test_done
