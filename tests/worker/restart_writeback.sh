#!/bin/bash
test_description='a new worker serves with the kernel writeback cache as the connection'"'"'s INIT settled it, whatever its own options say (an upgrade may change the default): on by default and after restarts, off with -o nowriteback and after restarts, also when restart --exec runs a binary told the opposite; and a worker killed under it'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_worker.sh"
require_root

wb() { ctl status --json | jq -c .writeback; }

# the binary under test, run with one more option (after the mount's own)
opposite() {
	printf '#!/bin/sh\nexec %q "$@" -o %s\n' "$RELOCFS" "$2" >"$TEST_DIR/$1"
	chmod +x "$TEST_DIR/$1"
}
opposite with-nowriteback nowriteback
opposite with-writeback writeback

# times_follow FILE: a write through the mount, closed: the backing file
# takes the mount's mtime (with the cache), or stamps its own (without)
times_follow() {
	exec 5>>"$TEST_MNT/$1"
	sleep 0.05
	printf 'x' >&5
	exec 5>&-
	assert_eq "$(stat -c '%y %s' "$TEST_MNT/$1")" "$(stat -c '%y %s' "$TEST_SRC/$1")" "mtime and size of $1 through the mount and on the backing file"
}

step 'the default mount has the cache; restart and restart --exec of a binary told -o nowriteback keep it'
relocfs_mount
assert_eq true "$(wb)" "writeback at mount"
ctl restart >/dev/null
assert_eq true "$(wb)" "writeback after restart"
ctl restart --exec "$TEST_DIR/with-nowriteback" >/dev/null
assert_eq true "$(wb)" "writeback after restart --exec of a binary told nowriteback"
times_follow a
kill_worker
assert_eq true "$(wb)" "writeback after the worker was killed"
times_follow a
relocfs_umount

step '-o nowriteback: restart and restart --exec of a binary told -o writeback keep it off'
relocfs_mount -o nowriteback
assert_eq false "$(wb)" "writeback at mount"
ctl restart --exec "$TEST_DIR/with-writeback" >/dev/null
assert_eq false "$(wb)" "writeback after restart --exec of a binary told writeback"
times_follow b
relocfs_umount
test_done
