#!/bin/bash
test_description='four threads create, link, rename, remove and open names, each against a model of what every call must return, while the worker is killed again and again: no call returns other than the model says (each is done exactly once), and afterwards no node and no handle is left that the kernel does not hold'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_worker.sh"
require_tool nsstress
require_root
KILLS_WANTED=${RELOCFS_WORKER_KILLS:-60}
[ -z "${RELOCFS_SOAK:-}" ] || KILLS_WANTED=${RELOCFS_WORKER_KILLS:-600}

relocfs_mount
step 'nsstress starts: four threads, each with its own directory and model'
"$TOOLS/nsstress" --seed 11 --threads 4 --until-file "$TEST_DIR/ns.stop" "$TEST_MNT" \
	>"$TEST_DIR/ns.log" 2>&1 &
NS_PID=$!
sleep 1

step "the worker is killed $KILLS_WANTED times"
kill_loop_start "$KILLS_WANTED" 20 150
kill_loop_wait
assert_eq "$KILLS_WANTED" "$KILLS" "kills done"
grep 'took over' "$TEST_DIR/relocfs.log" | grep -v ' 0 request record(s) and 0 FORGET' |
	sed 's/^/    /' | sort | uniq -c | head -n 5

step 'every call returned what the model says'
touch "$TEST_DIR/ns.stop"
rc=0
wait "$NS_PID" || rc=$?
say "    $(tail -n 1 "$TEST_DIR/ns.log")"
assert_eq 0 "$rc" "nsstress exit status ($(tail -n 1 "$TEST_DIR/ns.log"))"

step 'the kernel forgets everything: the node table holds the root only, no handle is open'
assert_eq "1 0" "$(nodes_after_forget)" "nodes and open handles"
compare_trees "$TEST_SRC" "$TEST_MNT"

relocfs_umount
test_done
