#!/bin/bash
test_description='the qmp hook stops, confirms and continues a real QEMU, and leaves a VM the operator stopped as it was'
# QEMU's QMP as it really is (greeting, capabilities, events such as STOP and
# RESUME between replies, "\r\n" line ends): the unit test's own QMP server
# only imitates it.  The guest prints "TICK n" twice a second; the hook is
# driven by build/tests/test_vmhook (test_qmp_hook_against_real_qemu runs when
# RELOCFS_TEST_QMP_SOCKET is set).  No relocfs mount is needed.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/guest.sh"

QEMU_LOG=$TEST_DIR/console.log
QMP_SOCK=$TEST_DIR/qmp.sock
trap 'rc=$?; set +e; guest_kill; (exit $rc); cleanup' EXIT

ticks() { sed -n 's/^TICK \([0-9][0-9]*\).*/\1/p' "$QEMU_LOG" 2>/dev/null | tail -n 1; }

step 'a ticking guest with a QMP socket'
guest_prepare_or_skip
[ -x "$TOOLS/test_vmhook" ] || fail "'$TOOLS/test_vmhook' is not built (make unit)"
printf 'i=0\nwhile :; do i=$((i + 1)); echo "TICK $i"; sleep 0.5; done\n' >"$TEST_DIR/tick.sh"
GUEST_INITRD=$TEST_DIR/initrd.gz
guest_initrd "$TEST_DIR/tick.sh" "$GUEST_INITRD" || fail "cannot build the initramfs"
guest_start "$QEMU_LOG" "$QMP_SOCK"
guest_wait_line "$QEMU_LOG" '^TICK' 120 || { tail -n 20 "$QEMU_LOG"; fail "the guest does not tick"; }

step 'pause, query, resume; an operator stop survives pause and resume (test_vmhook)'
RELOCFS_TEST_DEBUG=1 RELOCFS_TEST_QMP_SOCKET=$QMP_SOCK "$TOOLS/test_vmhook" >"$TEST_DIR/unit.out" 2>&1 ||
	{ cat "$TEST_DIR/unit.out"; fail "test_vmhook failed"; }
grep -q '^\[       OK \] test_qmp_hook_against_real_qemu' "$TEST_DIR/unit.out" ||
	fail "the real-QEMU test did not run: $(grep real_qemu "$TEST_DIR/unit.out")"
grep -E "hook 'qmp:.*qmp.sock': (paused|resumed) in" "$TEST_DIR/unit.out" | sed 's/^/    /'
grep -Eq "qmp '.*qmp.sock': event (STOP|RESUME)" "$TEST_DIR/unit.out" ||
	fail "no STOP or RESUME event seen (and skipped) by the client"

step 'the guest ticks on afterwards'
t=$(ticks)
wait_until 60 eval '[ "$(ticks)" -gt $((t + 2)) ]' || fail "no tick after $t: guest not running?"

test_done
