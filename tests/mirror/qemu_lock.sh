#!/bin/bash
test_description='QEMU image locking through the mount: while one qemu-io holds an image, a second writer is refused and -U readers are let in'
. "$(dirname "$0")/../lib.sh"
require_cmd qemu-img qemu-io
relocfs_mount

# These run inside $(scenario ...): their failures are said on stderr, which
# the command substitution does not take.
holder_start() {	# holder_start IMAGE FORMAT: an interactive qemu-io keeps IMAGE open
	# a stale holder.out would say "wrote" before this holder has the image
	rm -f "$TEST_DIR/holder.in" "$TEST_DIR/holder.out"
	mkfifo "$TEST_DIR/holder.in"
	qemu-io -f "$2" "$1" <"$TEST_DIR/holder.in" >"$TEST_DIR/holder.out" 2>&1 &
	HOLDER=$!
	exec 7>"$TEST_DIR/holder.in"
	# a holder that could not open the image has gone: say why, not SIGPIPE
	(trap '' PIPE; echo 'write -P 0x11 0 4k' >&7) 2>/dev/null ||
		fail "the holder exited before its first command: $(cat "$TEST_DIR/holder.out")" >&2
	wait_until 30 grep -q 'wrote 4096/4096' "$TEST_DIR/holder.out" ||
		fail "the holder did not open '$1': $(cat "$TEST_DIR/holder.out")" >&2
}
holder_stop() {
	(trap '' PIPE; echo quit >&7) 2>/dev/null ||
		fail "the holder exited before it was told to: $(cat "$TEST_DIR/holder.out")" >&2
	exec 7>&-
	wait "$HOLDER" || fail "the holder qemu-io exited with an error: $(cat "$TEST_DIR/holder.out")" >&2
}
# outcome CMD...: "ok" or "refused: <first line of the error>"
outcome() {
	local out
	if out=$("$@" 2>&1); then
		echo ok
	else
		echo "refused: $(printf '%s\n' "$out" | grep -m1 -o 'Failed to get[^:]*lock' || printf '%s\n' "$out" | head -n1)"
	fi
}
# scenario DIR FORMAT: what a second writer, readers and a later writer get
# while a qemu-io holds DIR/disk.FORMAT
scenario() {
	local img=$1/disk.$2
	qemu-img create -q -f "$2" "$img" 16M
	holder_start "$img" "$2"
	echo "second writer: $(outcome qemu-io -f "$2" -c 'write -P 0x22 0 4k' "$img")"
	echo "qemu-img info: $(outcome qemu-img info "$img")"
	echo "qemu-img info -U: $(outcome qemu-img info -U "$img")"
	echo "read-only -U reader: $(outcome qemu-io -r -U -f "$2" -c 'read -P 0x11 0 4k' "$img")"
	holder_stop
	echo "writer after the holder quit: $(outcome qemu-io -f "$2" -c 'write -P 0x22 4k 4k' -c 'read -P 0x11 0 4k' "$img")"
}

step 'qcow2: while qemu-io holds an image, a second writer and qemu-img info are refused, -U readers are not'
ref=$(scenario "$TEST_REF" qcow2)
got=$(scenario "$TEST_MNT" qcow2)
assert_eq "second writer: refused: Failed to get \"write\" lock
qemu-img info: refused: Failed to get shared \"write\" lock
qemu-img info -U: ok
read-only -U reader: ok
writer after the holder quit: ok" "$ref" "the scenario in a plain directory (a QEMU change?)"
assert_eq "$ref" "$got" "the scenario in a plain directory (expected) and through the mount (actual)"

step 'raw: the same scenario gives the same outcomes as in a plain directory'
ref=$(scenario "$TEST_REF" raw)
got=$(scenario "$TEST_MNT" raw)
assert_eq "$ref" "$got" "the scenario in a plain directory (expected) and through the mount (actual)"

step 'an OFD lock held through the mount makes a second one fail with EAGAIN until it is released'
require_tool fsop
touch "$TEST_MNT/lockfile"
mkfifo "$TEST_DIR/lock.in"
"$TOOLS/fsop" lock "$TEST_MNT/lockfile" <"$TEST_DIR/lock.in" >"$TEST_DIR/lock.out" &
locker=$!
exec 8>"$TEST_DIR/lock.in"
wait_until 10 grep -q ok "$TEST_DIR/lock.out" || fail "the first lock was not granted: $(cat "$TEST_DIR/lock.out")"
assert_eq EAGAIN "$(untrapped "$TOOLS/fsop" lock "$TEST_MNT/lockfile" </dev/null)" "second lock while the first is held"
exec 8>&-
wait "$locker"
assert_eq ok "$("$TOOLS/fsop" lock "$TEST_MNT/lockfile" </dev/null)" "lock after the first was released"

relocfs_umount
test_done
