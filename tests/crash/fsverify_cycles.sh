#!/bin/bash
test_description='fsverify on six files through the mount, seed after seed, while the whole tree is migrated, cut over, migrated again and aborted in a loop (migrate to D1, cutover, migrate to D2, abort, migrate to D2, cutover, ...): every operation of every seed matches the model, and the served files equal the last model at the end'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
require_tool fsverify
require_daemon
FSV=$TOOLS/fsverify
NFILES=6
SEEDS=${RELOC_CYCLES_SEEDS:-36}		# at least this many seeds
CYCLES=${RELOC_CYCLES_MIN:-20}		# and at least this many relocation cycles
LOOP_STOP=$TEST_DIR/loop.stop
LOOP_LOG=$TEST_DIR/loop.log
LOOP_COUNT=$TEST_DIR/loop.count
LOOP_PID=

# the relocation loop: cycle k migrates to a fresh directory d<k>; even
# cycles cut over, odd ones abort first and then migrate again to the
# same directory and cut over; each cutover removes the old tree
# (--remove-source), so no directory is used twice.  Any failure ends the
# loop with a line starting with FAILED.
reloc_loop() {
	local k=0 d out
	set +e
	trap - ERR
	while [ ! -e "$LOOP_STOP" ]; do
		k=$((k + 1))
		d=$TEST_DIR/d$k
		mkdir "$d"
		if [ $((k % 2)) = 0 ]; then
			out=$(ctl migrate --to "$d" 2>&1) || { echo "FAILED cycle $k migrate: $out"; return; }
			sleep 0.$((RANDOM % 5))
			out=$(ctl abort 2>&1) || { echo "FAILED cycle $k abort: $out"; return; }
			[ -z "$(ls -A "$d")" ] || { echo "FAILED cycle $k: '$d' not empty after the abort"; return; }
			echo "cycle $k: migrated to $d and aborted"
		fi
		out=$(ctl migrate --to "$d" 2>&1) || { echo "FAILED cycle $k migrate: $out"; return; }
		out=$(ctl wait --timeout 120 2>&1) || { echo "FAILED cycle $k wait: $out"; return; }
		out=$(ctl cutover --timeout 60 --remove-source 2>&1) || { echo "FAILED cycle $k cutover: $out"; return; }
		[ "$(status_field source)" = "$d" ] || { echo "FAILED cycle $k: not serving '$d' after the cutover"; return; }
		echo "cycle $k: cut over to $d: $out"
		echo "$k" >"$LOOP_COUNT"
	done
}

loop_failed() {
	grep -q '^FAILED' "$LOOP_LOG" 2>/dev/null
}

cycles_done() {
	cat "$LOOP_COUNT" 2>/dev/null || echo 0
}

stop_loop() {
	[ -n "$LOOP_PID" ] || return 0
	touch "$LOOP_STOP"
	wait "$LOOP_PID" || true
	LOOP_PID=
}

step "fsverify's $NFILES files exist before any migration (a whole-tree job pins names)"
relocfs_mount ${RELOC_MOUNT_OPTS:-}
mkdir "$TEST_MNT/v"
for i in $(seq 0 $((NFILES - 1))); do
	: >"$TEST_MNT/v/fsverify.$i"
done

step "at least $SEEDS seeds and $CYCLES relocation cycles, side by side"
reloc_loop >"$LOOP_LOG" 2>&1 &
LOOP_PID=$!
seed=0
while [ "$seed" -lt "$SEEDS" ] || [ "$(cycles_done)" -lt "$CYCLES" ]; do
	seed=$((seed + 1))
	[ "$seed" -le $((SEEDS * 20)) ] || fail "only $(cycles_done) cycles after $((seed - 1)) seeds: $(tail -n 3 "$LOOP_LOG")"
	case $((seed % 3)) in
	0) opts="--threads 3" ;;
	1) opts="--threads 2 --direct" ;;
	2) opts="--threads 3 --sync-every 50" ;;
	esac
	# shellcheck disable=SC2086
	"$FSV" --seed "$seed" --ops 1500 --files "$NFILES" --size 2M $opts \
		--model-out "$TEST_DIR/model" "$TEST_MNT/v" >"$TEST_DIR/fsv.out" 2>&1 ||
		fail "fsverify --seed $seed --ops 1500 --files $NFILES --size 2M $opts (cycle $(cycles_done), loop: $(tail -n 1 "$LOOP_LOG")): $(cat "$TEST_DIR/fsv.out")"
	say "  seed $seed ($opts), after cycle $(cycles_done): $(tail -n 1 "$TEST_DIR/fsv.out")"
	loop_failed && fail "the relocation loop failed: $(grep '^FAILED' "$LOOP_LOG")"
done
stop_loop
loop_failed && fail "the relocation loop failed: $(grep '^FAILED' "$LOOP_LOG")"
say "  $seed seeds, $(cycles_done) cycles; $(grep -c 'aborted' "$LOOP_LOG") aborts, $(grep -c 'cut over' "$LOOP_LOG") cutovers"

step 'finish the job in progress, if any; the served files equal the last model'
if [ -n "$(status_json | jq -r '.destination // ""')" ]; then
	ctl abort >/dev/null
fi
root=$(status_field source)
"$FSV" --check-against "$TEST_DIR/model" "$TEST_MNT/v" >"$TEST_DIR/fsv.out" 2>&1 ||
	fail "the mount differs from the last model: $(cat "$TEST_DIR/fsv.out")"
relocfs_umount
"$FSV" --check-against "$TEST_DIR/model" "$root/v" >"$TEST_DIR/fsv.out" 2>&1 ||
	fail "the served directory '$root' differs from the last model: $(cat "$TEST_DIR/fsv.out")"
test_done
