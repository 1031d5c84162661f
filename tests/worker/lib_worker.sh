# tests/worker/lib_worker.sh: sourced by the worker tests after tests/lib.sh
# and tests/reloc/lib_reloc.sh.
#
# Adds:
#   worker_pid            the pid of the worker serving the mount (status --json)
#   kill_worker [PID]     SIGKILL it, and wait until another serves (a hang guard)
#   kill_loop_start N LO HI   kill the worker N times in the background, LO to HI
#                         ms after each new worker serves; kill_loop_wait waits
#                         for it and fails if it failed; KILLS counts the kills
#   nodes_after_forget    drop the kernel's caches (it FORGETs what it does not
#                         hold open) and print the node table's size
#   log_since MARK PATTERN  wait until relocfs.log has PATTERN after byte MARK

KILL_LOG=$TEST_DIR/kills.log
KILL_PID=

worker_pid() {
	"$RELOCCTL" -m "$TEST_MNT" status --json 2>/dev/null | jq -r '.worker_pid // empty'
}

new_worker_since() {	# new_worker_since OLD: another worker serves
	local p
	p=$(worker_pid)
	[ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$1" ]
}

# kill_worker [PID]: PID (known before, so that the kill is not late), or
# the worker serving now
kill_worker() {
	local p=${1:-}
	[ -n "$p" ] || p=$(worker_pid)
	[ -n "$p" ] && [ "$p" != 0 ] || fail "no worker serves '$TEST_MNT'"
	kill -9 "$p"
	wait_until 60 new_worker_since "$p" || fail "no new worker within 60 s after killing $p"
}

# the kill loop runs in a subshell: it reports on its log
kill_loop() {
	local n=$1 lo=$2 hi=$3 i p ms
	trap - ERR
	set +e
	for ((i = 1; i <= n; i++)); do
		ms=$((lo + RANDOM % (hi - lo + 1)))
		sleep "$(printf '0.%03d' "$ms")"
		[ ! -e "$TEST_DIR/kills.stop" ] || break
		p=$(worker_pid)
		if [ -z "$p" ] || [ "$p" = 0 ]; then
			echo "FAILED: no worker before kill $i"
			return
		fi
		kill -9 "$p"
		wait_until 60 new_worker_since "$p" || { echo "FAILED: no new worker within 60 s after kill $i"; return; }
		echo "kill $i: $p"
	done
	echo "done"
}

kill_loop_start() {
	rm -f "$TEST_DIR/kills.stop"
	kill_loop "$@" >"$KILL_LOG" 2>&1 &
	KILL_PID=$!
}

kill_loop_wait() {
	[ -n "$KILL_PID" ] || return 0
	wait "$KILL_PID" || true
	KILL_PID=
	! grep -q '^FAILED' "$KILL_LOG" || fail "$(grep '^FAILED' "$KILL_LOG")"
	KILLS=$(grep -c '^kill ' "$KILL_LOG" || true)
}

kill_loop_stop() {
	touch "$TEST_DIR/kills.stop"
	kill_loop_wait
}

nodes_after_forget() {
	sync
	echo 2 >/proc/sys/vm/drop_caches
	sleep 0.5
	echo 2 >/proc/sys/vm/drop_caches
	"$RELOCCTL" -m "$TEST_MNT" status --json | jq -r '"\(.nodes) \(.open_handles)"'
}

log_mark() {
	stat -c %s "$TEST_DIR/relocfs.log"
}

log_has_since() {	# log_has_since MARK PATTERN
	tail -c +$(($1 + 1)) "$TEST_DIR/relocfs.log" | grep -q -- "$2"
}

log_since() {
	wait_until 60 log_has_since "$1" "$2" || fail "relocfs did not log '$2' within 60 s"
}
