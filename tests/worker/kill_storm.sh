#!/bin/bash
test_description='the worker is killed 200 times while small requests stream from every CPU (O_DIRECT writes, reads and stats, each checked, 8 threads a CPU so that a ring thread has several backing I/Os queued when it dies): requests on their way to the dying worker are served by the next one, and none fails'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_worker.sh"
require_tool iostorm
require_root
KILLS_WANTED=${RELOCFS_WORKER_KILLS:-200}

relocfs_mount
step "small requests from every CPU, and the worker killed $KILLS_WANTED times, 10 to 60 ms after each new one serves"
"$TOOLS/iostorm" "$TEST_MNT" 3600 8 >"$TEST_DIR/storm.log" 2>&1 &
STORM_PID=$!
kill_loop_start "$KILLS_WANTED" 10 60
kill_loop_wait
touch "$TEST_MNT/iostorm.stop"
rc=0
wait "$STORM_PID" || rc=$?
say "    $KILLS kills; $(tail -n 1 "$TEST_DIR/storm.log")"
assert_eq "$KILLS_WANTED" "$KILLS" "kills done"
is_mounted "$TEST_MNT" || fail "the mount went away"

step 'no call failed and every read returned what was written'
[ "$rc" = 0 ] || fail "$(grep -v '^iostorm: [0-9]* calls' "$TEST_DIR/storm.log" | head -n 3)"

relocfs_umount
test_done
