#!/bin/bash
test_description='bad command lines: each prints one line on stderr, exits non-zero and mounts nothing'
. "$(dirname "$0")/../lib.sh"
require_daemon
require_tool ctlpoke

mounts() { awk -v d="$TEST_DIR/" 'index($5, d) == 1' /proc/self/mountinfo | wc -l; }

# rejects DESCRIPTION ARGS...: relocfs ARGS must fail with exactly one line on
# stderr and leave the mounts (and daemons) as they were
rejects() {
	local what=$1 rc=0 before lines
	shift
	step "$what: one line on stderr, non-zero exit, nothing mounted"
	before=$(mounts)
	daemons_before=$(leftover_daemons | wc -l)
	timeout 30 "$RELOCFS" "$@" >"$TEST_DIR/out" 2>"$TEST_DIR/err" </dev/null || rc=$?
	[ $rc != 124 ] || fail "relocfs $* did not return within 30 s"
	[ $rc != 0 ] || fail "relocfs $* exited with status 0 (stderr: $(cat "$TEST_DIR/err"))"
	lines=$(wc -l <"$TEST_DIR/err")
	[ "$lines" = 1 ] || fail "relocfs $* wrote $lines lines on stderr, want 1:
$(sed 's/^/    | /' "$TEST_DIR/err")"
	[ -n "$(tr -d '[:space:]' <"$TEST_DIR/err")" ] || fail "relocfs $* wrote an empty line on stderr"
	assert_eq "$before" "$(mounts)" "FUSE mounts under the test directory after relocfs $*"
	sleep 0.2
	assert_eq "$daemons_before" "$(leftover_daemons | wc -l)" "relocfs processes for this test after relocfs $*"
	say "  relocfs $* -> exit $rc: $(cat "$TEST_DIR/err")"
}

echo file >"$TEST_DIR/a-file"
mkdir "$TEST_DIR/src2"

rejects 'no arguments'
rejects 'missing source directory' "$TEST_DIR/nonexistent" "$TEST_MNT"
rejects 'source is a regular file' "$TEST_DIR/a-file" "$TEST_MNT"
rejects 'missing mountpoint' "$TEST_SRC" "$TEST_DIR/no-such-mnt"
rejects 'mountpoint is a regular file' "$TEST_SRC" "$TEST_DIR/a-file"
rejects 'over-mount of a missing directory' "$TEST_DIR/nonexistent"
rejects 'unknown -o option' -o no_such_option_xyz "$TEST_SRC" "$TEST_MNT"
rejects '-o without a value' "$TEST_SRC" "$TEST_MNT" -o
rejects 'unknown flag' --no-such-flag "$TEST_SRC" "$TEST_MNT"
rejects 'three positional arguments' "$TEST_SRC" "$TEST_MNT" "$TEST_DIR/src2"
rejects 'unknown transport' -o transport=carrier-pigeon "$TEST_SRC" "$TEST_MNT"
rejects 'empty transport' -o transport= "$TEST_SRC" "$TEST_MNT"
rejects 'transport without a value' -o transport "$TEST_SRC" "$TEST_MNT"
rejects 'poll beyond its range' -o poll=1001 "$TEST_SRC" "$TEST_MNT"
rejects 'poll that is not a number' -o poll=soon "$TEST_SRC" "$TEST_MNT"
rejects 'poll over /dev/fuse' -o transport=dev,poll=50 "$TEST_SRC" "$TEST_MNT"
if [ "$(cat /sys/module/fuse/parameters/enable_uring 2>/dev/null)" != Y ]; then
	rejects 'transport=uring on a kernel that does not offer it' -o transport=uring "$TEST_SRC" "$TEST_MNT"
fi

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	# uid 1234 runs relocfs (fusermount3 is setuid) on a source it cannot read
	chmod 0755 "$TEST_DIR"
	mkdir -m 0700 "$TEST_DIR/private" "$TEST_DIR/user-mnt"
	chown 1234:1234 "$TEST_DIR/user-mnt"
	RELOCFS_USER="setpriv --reuid 1234 --regid 1234 --clear-groups $RELOCFS"
	RELOCFS_SAVED=$RELOCFS
	RELOCFS=$TEST_DIR/as-user
	printf '#!/bin/sh\nexec %s "$@"\n' "$RELOCFS_USER" >"$RELOCFS"
	chmod 0755 "$RELOCFS"
	rejects 'unreadable source directory (uid 1234, source 0700 root)' "$TEST_DIR/private" "$TEST_DIR/user-mnt"
	RELOCFS=$RELOCFS_SAVED
else
	say "  (unreadable source: needs root and setpriv, not run)"
fi

relocfs_mount
echo served >"$TEST_SRC/marker"
rejects 'mountpoint is already a relocfs mount' "$TEST_DIR/src2" "$TEST_MNT"
rejects 'over-mount of a directory that is already a relocfs mount' "$TEST_MNT"

step 'the first mount still serves its source after the refused attempts'
assert_eq served "$(cat "$TEST_MNT/marker")" "marker read through the first mount"
relocfs_umount
assert_eq 0 "$(mounts)" "mounts left"

step "a control socket kept open by a process that never answers (a killed daemon's last process, still ending): relocfs waits until it closes, then mounts"
sock=$("$TOOLS/ctlpoke" --path "$TEST_MNT")
mkdir -p "$(dirname "$sock")"
"$TOOLS/ctlpoke" "$sock" mute 4 >"$TEST_DIR/mute.out" &
mute=$!
wait_until 10 grep -q listening "$TEST_DIR/mute.out" || fail "ctlpoke did not listen"
relocfs_mount
wait "$mute" || fail "ctlpoke mute failed"
assert_eq served "$(cat "$TEST_MNT/marker")" "marker read through the mount"
assert_eq "status ok" "$("$RELOCCTL" -m "$TEST_MNT" status >/dev/null && echo status ok)" "relocctl status on the new socket"
relocfs_umount

test_done
