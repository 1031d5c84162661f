#!/bin/bash
test_description='relocctl restart hands the mount to a new worker, and restart --exec to a new binary, again and again under a flushing writer, namespace churn and a migration: no call fails, the migration goes on and cuts over, every byte is what was written; a binary that is missing, not relocfs, of another state layout, reading only an older record or knowing only buffered backing descriptors is refused with one line and the worker serving goes on'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_worker.sh"
require_tool nsstress
require_root
ROUNDS=${RELOCFS_RESTARTS:-20}

relocfs_mount
w0=$(worker_pid)

step 'a binary that cannot take over is refused; the same worker goes on serving'
refused() {	# refused PATH WHAT: restart --exec PATH fails with one line
	local rc=0 out
	out=$(ctl restart --exec "$1" 2>&1) || rc=$?
	[ "$rc" != 0 ] || fail "restart --exec $1 ($2) succeeded"
	[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "restart --exec $1 printed more than one line: $out"
	say "    $2: $out"
}
refused /nonexistent/relocfs 'a missing file'
refused /bin/true 'not relocfs'
# a layout one past the binary's own, whatever that is now
layout=$("$RELOCFS" --version | sed -n 's/.*state layout \([0-9]*\)).*/\1/p')
[ -n "$layout" ] || fail "relocfs --version names no state layout: $("$RELOCFS" --version)"
cat >"$TEST_DIR/other-layout" <<EOS
#!/bin/sh
echo "relocfs 9.9 (libfuse 3.14.0, state layout $((layout + 1)))"
EOS
chmod +x "$TEST_DIR/other-layout"
refused "$TEST_DIR/other-layout" 'another state layout'
# a relocfs of the same layout that reads only the first version of the
# mount's record (before --version named it): it could not carry the jobs on
cat >"$TEST_DIR/record1" <<EOS
#!/bin/sh
echo "relocfs 0.2.0 (libfuse 3.14.0, state layout $layout)"
EOS
chmod +x "$TEST_DIR/record1"
refused "$TEST_DIR/record1" 'an older record'
# one that names the record version before this binary's: it reads every
# older version, but not the record this one writes
record=$("$RELOCFS" --version | sed -n 's/.*state record \([0-9]*\),.*/\1/p')
[ -n "$record" ] || fail "relocfs --version names no state record: $("$RELOCFS" --version)"
cat >"$TEST_DIR/record-before" <<EOS
#!/bin/sh
echo "relocfs 0.2.0 (libfuse 3.14.0, state record $((record - 1)), state layout $layout)"
EOS
chmod +x "$TEST_DIR/record-before"
refused "$TEST_DIR/record-before" "a record before version $record"
# one of this record and layout from before the backing descriptors of
# cached files could be O_DIRECT (no "backing" named): it would send them
# unaligned writes
cat >"$TEST_DIR/backing1" <<EOS
#!/bin/sh
echo "relocfs 0.2.0 (libfuse 3.14.0, state record $record, state layout $layout)"
EOS
chmod +x "$TEST_DIR/backing1"
refused "$TEST_DIR/backing1" 'buffered backing descriptors only'
rc=0
ctl restart --exec >/dev/null 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "restart --exec without a path succeeded"
assert_eq "$w0" "$(worker_pid)" "the worker after the refusals"
is_mounted "$TEST_MNT" || fail "the mount went away"

step 'a flushing writer, nsstress, and a rate-limited migration'
writer_start --seed 5 --size 24M --file "$TEST_MNT/a.img" --size 4M --file "$TEST_MNT/b.img" \
	--direct --flush-every 4
"$TOOLS/nsstress" --seed 3 --threads 2 --until-file "$TEST_DIR/ns.stop" "$TEST_MNT" \
	>"$TEST_DIR/ns.log" 2>&1 &
NS_PID=$!
mkdir -p "$TEST_DST"
ctl migrate --to "$TEST_DST" --rate 8M a.img b.img >/dev/null

cp "$RELOCFS" "$TEST_DIR/relocfs-next"
step "$ROUNDS hand-overs, every fourth to a copy of the binary (--exec), during the copy and the merge"
gaps=
for ((i = 1; i <= ROUNDS; i++)); do
	old=$(worker_pid)
	if ((i % 4 == 0)); then
		out=$(ctl restart --exec "$TEST_DIR/relocfs-next") || fail "restart --exec $i failed: $out"
	else
		out=$(ctl restart) || fail "restart $i failed: $out"
	fi
	new=$(worker_pid)
	[ -n "$new" ] && [ "$new" != "$old" ] || fail "restart $i: still worker '$new' ($out)"
	gaps="$gaps $(status_field last_unserved_ms)"
	writer_running || fail "the writer stopped at restart $i: $(tail -n 3 "$TEST_DIR/writer.log")"
	sleep 0.$((RANDOM % 5))
done
say "    connection unserved per hand-over (ms):$gaps"
assert_eq "$ROUNDS" "$(status_field worker_restarts)" "workers after the first"
assert_eq 0 "$(status_field worker_deaths)" "workers that died"
grep -q "running $TEST_DIR/relocfs-next" "$TEST_DIR/relocfs.log" || fail "no hand-over to the new binary was logged"

step 'the migration went on in the new workers: it cuts over'
ctl wait --timeout 300 >/dev/null
ctl cutover --timeout 60 >/dev/null
assert_eq "" "$(status_json | jq -r '.destination // ""')" "no job left"

step 'no call failed, every byte is what was written'
touch "$TEST_DIR/ns.stop"
rc=0
wait "$NS_PID" || rc=$?
assert_eq 0 "$rc" "nsstress exit status ($(tail -n 1 "$TEST_DIR/ns.log"))"
writer_stop
check_final "$TEST_MNT" a.img b.img
check_final "$TEST_DST" a.img b.img
assert_eq "1 0" "$(nodes_after_forget)" "nodes and open handles after the kernel forgot everything"

relocfs_umount
test_done
