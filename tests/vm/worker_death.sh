#!/bin/bash
test_description='the worker is killed more than 20 times under a running QEMU guest with the default error policy (an I/O error reaches the guest): in the copy, the merge, the abort, a cutover hold with the VM paused by QMP before and after the switch; the guest never sees an error, is never left paused, and its own check of every flushed generation passes on the destination'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/guest.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/../worker/lib_worker.sh"
require_cmd socat
require_root

QEMU_LOG=$TEST_DIR/console.log
QMP_SOCK=$TEST_DIR/qmp.sock
NBLK=256
TOTAL=0
trap 'rc=$?; set +e; guest_kill; (exit $rc); reloc_cleanup' EXIT

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
guest_clean() {
	! grep -aq 'I/O error\|VERIFY FAIL\|Buffer I/O' "$QEMU_LOG" || { console_tail; fail "the guest saw an I/O error or read back a wrong block"; }
}
# kills N LO HI: N kills of the worker while the guest writes on
kills() {
	local g
	g=$(last_gen)
	kill_loop_start "$@"
	kill_loop_wait
	TOTAL=$((TOTAL + KILLS))
	wait_gen $((g + 3)) 60 || { console_tail; fail "the guest stopped writing"; }
	guest_clean
}
running() { [ "$(vm_status)" = running ]; }

step 'a guest that writes generation g to block g % 256 of two raw disks on the mount (O_DIRECT, fsync) and reads each back'
guest_prepare_or_skip
cat >"$TEST_DIR/script.sh" <<EOF
$GUEST_PATTERN_SH
g=0
while :; do
	g=\$((g + 1))
	b=\$((g % $NBLK))
	for d in vda vdb; do
		blocks \$d \$g \$b 1 >/tmp/a
		dd if=/tmp/a of=/dev/\$d bs=4096 seek=\$b oflag=direct conv=fsync,notrunc 2>/tmp/dd.err ||
			{ echo "VERIFY FAIL: \$d generation \$g: \$(cat /tmp/dd.err)"; exit 1; }
		dd if=/dev/\$d bs=4096 skip=\$b count=1 iflag=direct 2>/tmp/dd.err | cmp -s - /tmp/a ||
			{ echo "VERIFY FAIL: \$d generation \$g read back wrong: \$(cat /tmp/dd.err)"; exit 1; }
	done
	echo "GEN \$g flushed"
	dd if=/dev/vdc bs=512 count=1 iflag=direct 2>/dev/null | grep -q STOP && break
done
bad=0
k=\$((g > $NBLK - 1 ? g - $NBLK + 1 : 1))
while [ \$k -le \$g ]; do
	for d in vda vdb; do
		blocks \$d \$k \$((k % $NBLK)) 1 >/tmp/exp
		dd if=/dev/\$d bs=4096 skip=\$((k % $NBLK)) count=1 iflag=direct 2>/dev/null | cmp -s - /tmp/exp ||
			{ echo "VERIFY FAIL: \$d block \$((k % $NBLK)) lacks generation \$k"; bad=1; }
	done
	k=\$((k + 1))
done
[ \$bad = 0 ] && echo "VERIFY PASS gen=\$g"
EOF
GUEST_INITRD=$TEST_DIR/initrd.gz
guest_initrd "$TEST_DIR/script.sh" "$GUEST_INITRD" || fail "cannot build the initramfs"

step 'boot it with the disks (32 and 16 MiB) on the mount, the default error policy; the cutover and abort holds last 3 s'
RELOCFS_DELAYPOINT=cutover-hold:3000000,cutover-switched:3000000,abort-hold:3000000 relocfs_mount
head -c 32M /dev/urandom >"$TEST_MNT/disk.raw"
head -c 16M /dev/urandom >"$TEST_MNT/disk2.raw"
truncate -s 1M "$TEST_DIR/ctl.img"
GUEST_QEMU_ARGS=(
	-blockdev "driver=file,node-name=proto0,filename=$TEST_MNT/disk.raw,cache.direct=on,aio=threads"
	-blockdev "driver=raw,node-name=disk0,file=proto0"
	-device "virtio-blk-pci,drive=disk0"
	-blockdev "driver=file,node-name=proto1,filename=$TEST_MNT/disk2.raw,cache.direct=on,aio=threads"
	-blockdev "driver=raw,node-name=disk1,file=proto1"
	-device "virtio-blk-pci,drive=disk1"
	-drive "file=$TEST_DIR/ctl.img,if=virtio,format=raw,cache=none,readonly=on")
guest_start "$QEMU_LOG" "$QMP_SOCK"
guest_wait_line "$QEMU_LOG" 'GUEST: ready' 90 || { console_tail 30; fail "the guest did not come up"; }
wait_gen 5 90 || { console_tail; fail "the guest did not flush 5 generations"; }

step 'no migration: 4 kills'
kills 4 100 400

step 'a slow migration: 6 kills in the copy'
ctl migrate --to "$TEST_DST" --rate 1M >/dev/null
wait_until 30 eval '[ "$(file_field disk.raw bytes_copied)" -gt 0 ]' || fail "the copy did not start"
kills 6 100 400
assert_eq copying "$(file_state disk.raw)" "the file's state after the kills"

step 'an abort: the worker dies in its hold; the next one finishes it'
mark=$(log_mark)
w=$(worker_pid)
ctl abort >/dev/null 2>&1 &
AB=$!
log_since "$mark" "delay point 'abort-hold' reached"
kill_worker "$w"
TOTAL=$((TOTAL + 1))
wait "$AB" || true
wait_until 60 eval '[ "$(status_field destination 2>/dev/null)" = null ]' || fail "the abort did not finish: $(status_json)"
[ -z "$(ls -A "$TEST_DST")" ] || fail "DEST is not empty after the abort"
guest_clean

step 'migrate again; 4 kills in the copy, 4 in the merge'
ctl migrate --to "$TEST_DST" --rate 4M >/dev/null
kills 4 100 300
ctl wait --timeout 300 >/dev/null
kills 4 100 300

step 'a cutover: QMP pauses the VM, the worker dies in the hold before the switch: cancelled, the VM runs on'
mark=$(log_mark)
w=$(worker_pid)
ctl cutover --hook "qmp:$QMP_SOCK" --timeout 60 >"$TEST_DIR/cutover1.out" 2>&1 &
CP=$!
log_since "$mark" "delay point 'cutover-hold' reached"
kill_worker "$w"
TOTAL=$((TOTAL + 1))
wait "$CP" && fail "the cutover whose worker died succeeded: $(cat "$TEST_DIR/cutover1.out")"
wait_until 30 running || fail "the VM was left $(vm_status)"
g=$(last_gen)
wait_gen $((g + 3)) 60 || { console_tail; fail "the guest did not go on after the cancelled cutover"; }
assert_eq "$TEST_DST" "$(status_field destination)" "the migration after the cancelled cutover"
guest_clean

step 'a cutover that dies after the switch: rolled forward, the VM runs on the destination'
ctl wait --timeout 120 >/dev/null
mark=$(log_mark)
w=$(worker_pid)
ctl cutover --hook "qmp:$QMP_SOCK" --timeout 60 >"$TEST_DIR/cutover2.out" 2>&1 &
CP=$!
log_since "$mark" "delay point 'cutover-switched' reached"
kill_worker "$w"
TOTAL=$((TOTAL + 1))
wait "$CP" || true
wait_until 30 running || fail "the VM was left $(vm_status)"
assert_eq "$TEST_DST" "$(status_field source)" "the directory served after the roll-forward"
g=$(last_gen)
wait_gen $((g + 3)) 60 || { console_tail; fail "the guest did not go on after the cutover"; }
kills 2 100 300

step "STOP after $TOTAL kills: the guest verifies what it wrote; the destination holds it"
[ "$TOTAL" -ge 20 ] || fail "only $TOTAL kills"
printf 'STOP' | dd of="$TEST_DIR/ctl.img" conv=notrunc,fsync status=none
guest_wait 120 || { console_tail; fail "the guest still runs 120 s after STOP"; }
console_tail 3
guest_clean
grep -aq '^VERIFY PASS' "$QEMU_LOG" || { console_tail 20; fail "the guest did not pass its own check"; }
g=$(sed -n 's/^VERIFY PASS gen=\([0-9][0-9]*\).*/\1/p' "$QEMU_LOG" | tr -d '\r')
b=$((g % NBLK))
assert_eq "$(pattern_blocks vda "$g" "$b" 1 | head -c 41)" \
	"$(dd if="$TEST_DST/disk.raw" bs=4096 skip=$b count=1 2>/dev/null | head -c 41)" "the last generation on DEST"
assert_eq "$(pattern_blocks vdb "$g" "$b" 1 | head -c 41)" \
	"$(dd if="$TEST_DST/disk2.raw" bs=4096 skip=$b count=1 2>/dev/null | head -c 41)" "the last generation on DEST's second disk"
say "    $(status_field worker_restarts) workers after the first"
test_done
