#!/bin/bash
test_description='relocfs started as a daemon with relative paths: relocctl restart --exec hands the mount to the new binary with the absolute paths (the daemon runs in /), a plain restart too, and the mount and its data stay'
. "$(dirname "$0")/../lib.sh"
require_daemon
require_root

ctl() {
	"$RELOCCTL" -m "$TEST_MNT" "$@"
}

step 'relocfs src mnt, from the test directory, as a daemon'
head -c 1M /dev/urandom >"$TEST_SRC/f.img"
(cd "$TEST_DIR" && "$RELOCFS" $(transport_opt) src mnt) >"$TEST_DIR/daemon.out" 2>&1 ||
	fail "relocfs exited non-zero: $(cat "$TEST_DIR/daemon.out")"
RELOCFS_MOUNTED=$TEST_MNT
check_transport "$TEST_MNT"

step 'restart --exec to the same binary, twice: the mount stays, and so does its data'
for i in 1 2; do
	out=$(ctl restart --exec "$RELOCFS" 2>&1) || fail "restart --exec ($i) failed: $out"
	say "  $out"
	is_mounted "$TEST_MNT" || fail "the mount went away after restart --exec ($i)"
	cmp "$TEST_SRC/f.img" "$TEST_MNT/f.img" || fail "the file reads wrong after restart --exec ($i)"
done

step 'a plain restart: the mount stays'
out=$(ctl restart 2>&1) || fail "restart failed: $out"
say "  $out"
cmp "$TEST_SRC/f.img" "$TEST_MNT/f.img" || fail "the file reads wrong after the restart"

step 'unmounted, the daemon exits'
fusermount3 -u "$TEST_MNT" || fail "cannot unmount '$TEST_MNT'"
RELOCFS_MOUNTED=
wait_until 20 eval '[ -z "$(leftover_daemons)" ]' || fail "relocfs $(leftover_daemons) still runs"
test_done
