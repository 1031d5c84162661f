#!/bin/bash
test_description='the libvirt hook suspends and resumes a real libvirt domain (qemu driver, TCG) through virsh'
# Uses the system libvirtd if one answers at qemu:///system; otherwise starts
# a private libvirtd (its control socket in $TEST_DIR) and a virtlogd, and
# ends both.  The domain is transient: a guest.sh kernel and initramfs whose
# script prints "TICK n" twice a second to a serial log.  The hook itself is
# driven by build/tests/test_vmhook (its test_libvirt_hook_against_real_libvirtd
# runs when RELOCFS_TEST_LIBVIRT_DOMAIN names a domain).  Skips when libvirt
# is not installed (it is optional: not every CI has it).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/guest.sh"

DOMAIN=relocfs-hooktest-$$
LIBVIRTD_PID=
VIRTLOGD_PID=
DOMAIN_UP=

stop_libvirt() {
	[ -z "$DOMAIN_UP" ] || virsh -c "$URI" destroy "$DOMAIN" >/dev/null 2>&1
	DOMAIN_UP=
	local p
	for p in $LIBVIRTD_PID $VIRTLOGD_PID; do
		kill "$p" 2>/dev/null
		wait_until 10 eval "! kill -0 $p 2>/dev/null" || kill -9 "$p" 2>/dev/null
	done
	LIBVIRTD_PID= VIRTLOGD_PID=
}
trap 'rc=$?; set +e; stop_libvirt; (exit $rc); cleanup' EXIT

step 'libvirtd with the qemu driver, and the test binary'
for c in virsh libvirtd virtlogd; do
	command -v $c >/dev/null 2>&1 || skip "'$c' is not installed (libvirt-daemon-system, libvirt-clients)"
done
guest_prepare_or_skip
[ -x "$TOOLS/test_vmhook" ] || fail "'$TOOLS/test_vmhook' is not built (make unit)"

if virsh -c qemu:///system version >/dev/null 2>&1; then
	URI=qemu:///system
	say "    using the system libvirtd"
else
	mkdir -p "$TEST_DIR/libvirt"
	cat >"$TEST_DIR/libvirt/libvirtd.conf" <<-EOF
	unix_sock_dir = "$TEST_DIR/libvirt"
	auth_unix_rw = "none"
	auth_unix_ro = "none"
	EOF
	if ! pgrep -x virtlogd >/dev/null; then
		virtlogd -d -p "$TEST_DIR/libvirt/virtlogd.pid" || fail "virtlogd does not start"
		wait_until 10 test -s "$TEST_DIR/libvirt/virtlogd.pid" || fail "virtlogd wrote no pid file"
		VIRTLOGD_PID=$(cat "$TEST_DIR/libvirt/virtlogd.pid")
	fi
	libvirtd -d -f "$TEST_DIR/libvirt/libvirtd.conf" -p "$TEST_DIR/libvirt/libvirtd.pid" ||
		fail "libvirtd does not start"
	wait_until 20 test -s "$TEST_DIR/libvirt/libvirtd.pid" || fail "libvirtd wrote no pid file"
	LIBVIRTD_PID=$(cat "$TEST_DIR/libvirt/libvirtd.pid")
	URI="qemu:///system?socket=$TEST_DIR/libvirt/libvirt-sock"
	# the first start probes QEMU's capabilities, slowly under TCG
	t0=$(date +%s)
	wait_until 120 eval 'virsh -c "$URI" version >/dev/null 2>&1' || fail "libvirtd does not answer at '$URI'"
	say "    started a private libvirtd (pid $LIBVIRTD_PID), answering after $(($(date +%s) - t0)) s"
fi

step 'a transient domain boots the test guest and ticks'
# QEMU runs as libvirt's user: it must reach the kernel, initramfs and log
chmod 755 "$TEST_DIR"
cp "$GUEST_KERNEL" "$TEST_DIR/vmlinuz"
printf 'i=0\nwhile :; do i=$((i + 1)); echo "TICK $i"; sleep 0.5; done\n' >"$TEST_DIR/tick.sh"
GUEST_INITRD=$TEST_DIR/initrd.gz
guest_initrd "$TEST_DIR/tick.sh" "$GUEST_INITRD" || fail "cannot build the initramfs"
cat >"$TEST_DIR/domain.xml" <<EOF
<domain type='qemu'>
  <name>$DOMAIN</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>$TEST_DIR/vmlinuz</kernel>
    <initrd>$GUEST_INITRD</initrd>
    <cmdline>console=ttyS0 panic=-1</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>$(command -v qemu-system-x86_64)</emulator>
    <serial type='file'><source path='$TEST_DIR/console.log'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
t0=$(date +%s)
virsh -c "$URI" create "$TEST_DIR/domain.xml" >"$TEST_DIR/create.out" 2>&1 ||
	fail "virsh create: $(tail -n 2 "$TEST_DIR/create.out")"
DOMAIN_UP=1
ticks() { sed -n 's/^TICK \([0-9][0-9]*\).*/\1/p' "$TEST_DIR/console.log" 2>/dev/null | tail -n 1; }
t1=$(date +%s)
wait_until 120 eval '[ -n "$(ticks)" ]' || fail "the guest does not tick: $(tail -n 3 "$TEST_DIR/console.log")"
say "    virsh create took $((t1 - t0)) s, first tick $(($(date +%s) - t1)) s later"

step 'the libvirt hook pauses and resumes the domain (test_vmhook against libvirtd)'
RELOCFS_TEST_DEBUG=1 RELOCFS_TEST_LIBVIRT_DOMAIN="$DOMAIN@$URI" \
	"$TOOLS/test_vmhook" >"$TEST_DIR/unit.out" 2>&1 || { cat "$TEST_DIR/unit.out"; fail "test_vmhook failed"; }
grep -E "hook 'libvirt:.*(paused|resumed) in" "$TEST_DIR/unit.out" | sed 's/^/    /'
grep -q '^\[       OK \] test_libvirt_hook_against_real_libvirtd' "$TEST_DIR/unit.out" ||
	fail "the libvirtd test did not run: $(grep libvirtd "$TEST_DIR/unit.out")"

step 'the guest ticks on after the resume'
t=$(ticks)
wait_until 60 eval '[ "$(ticks)" -gt $((t + 2)) ]' || fail "no tick after $t: domain not running?"
assert_eq running "$(virsh -c "$URI" domstate "$DOMAIN" | head -n 1)" "domstate"

step 'a domain the operator suspended stays suspended through pause and resume'
virsh -c "$URI" suspend "$DOMAIN" >/dev/null || fail "virsh suspend"
RELOCFS_TEST_LIBVIRT_DOMAIN="$DOMAIN@$URI" "$TOOLS/test_vmhook" >"$TEST_DIR/unit2.out" 2>&1 ||
	{ cat "$TEST_DIR/unit2.out"; fail "test_vmhook failed on the suspended domain"; }
assert_eq paused "$(virsh -c "$URI" domstate "$DOMAIN" | head -n 1)" "domstate after the operator's suspend"
virsh -c "$URI" resume "$DOMAIN" >/dev/null || fail "virsh resume"

stop_libvirt
test_done
