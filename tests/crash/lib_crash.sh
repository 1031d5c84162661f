# tests/crash/lib_crash.sh: sourced by the crash tests after tests/lib.sh and
# tests/reloc/lib_reloc.sh.
#
# A crash case runs on fresh directories: the mount serves $TEST_SRC, a
# writer works on $CRASH_FILES through it, the daemon dies (at a crash point,
# or kill -9), the writer stops on ENOTCONN, the dead mount is unmounted
# lazily, and the daemon is started again with the same arguments and no
# crash point.  Then every flushed write must be in the live view, the job
# must be where the case says it must be, and after the job is completed
# (cutover, abort, or nothing) the files on their backend must be exactly
# what a last writer wrote.
#
#   crash_reset               empty SRC, DST, the model; no mount may be up
#   crash_mount_armed NAME SKIP   mount with RELOCFS_CRASHPOINT=NAME, SKIP
#   crash_writer SEED         start the writer on $CRASH_FILES in the mount
#   crash_wait_dead SECONDS   the daemon must die within SECONDS (hang guard)
#   crash_reap                reap the dead daemon, lazy-unmount, stop the
#                             writer (it must have stopped on a failed call)
#   crash_restart             mount again, check every acked write
#   crash_migrate [ARGS]      relocctl migrate --to $TEST_DST ARGS, the whole
#                             tree or the files as $CRASH_MODE says
#   crash_outcome             print migrating, dest or source from status
#   crash_expect OUTCOME...   the outcome must be one of OUTCOMEs
#   crash_complete OUTCOME SEED  a new writer, the job finished as OUTCOME
#                             says (migrating: wait and cutover; source,
#                             dest: nothing), unmount, exact final check on
#                             the backend

CRASH_FILES="a.img b.img"
CRASH_MODE=tree		# tree: migrate the whole tree; files: migrate $CRASH_FILES
CRASH_WRITER_OPTS="--direct --flush-every 8 --delay-us 1000"
CASES=0

crash_reset() {
	[ -z "$RELOCFS_MOUNTED" ] || fail "crash_reset: still mounted"
	rm -rf "$TEST_SRC" "$TEST_DST" "$MODEL"
	mkdir -p "$TEST_SRC" "$TEST_DST" "$MODEL"
	: >"$TEST_DIR/relocfs.log"
}

# crash_mount_armed NAME SKIP: the daemon kills itself at the SKIP+1-th
# time it reaches crash point NAME
crash_mount_armed() {
	RELOCFS_CRASHPOINT=$1 RELOCFS_CRASHPOINT_SKIP=$2 relocfs_mount
}

# crash_writer SEED: sizes apply to files the writer creates; files that
# exist are taken as they are
crash_writer() {
	# shellcheck disable=SC2086
	writer_start --seed "$1" $CRASH_WRITER_OPTS \
		--size 32M --file "$TEST_MNT/a.img" --size 4M --file "$TEST_MNT/b.img"
}

crash_migrate() {
	if [ "$CRASH_MODE" = files ]; then
		# shellcheck disable=SC2086
		ctl migrate --to "$TEST_DST" "$@" $CRASH_FILES
	else
		ctl migrate --to "$TEST_DST" "$@"
	fi
}

daemon_dead() {
	! kill -0 "$RELOCFS_PID" 2>/dev/null
}

crash_wait_dead() {
	wait_until "$1" daemon_dead ||
		fail "the daemon did not die within $1 s (crash point not reached?); status: $(status_json 2>&1)"
}

# crash_reap: the daemon is dead or about to be
crash_reap() {
	local rc=0
	wait "$RELOCFS_PID" 2>/dev/null || rc=$?
	[ "$rc" = 137 ] || fail "the daemon exited with status $rc, not killed by SIGKILL (137)"
	RELOCFS_PID=
	fusermount3 -uz "$TEST_MNT" 2>/dev/null || umount -l "$TEST_MNT"
	RELOCFS_MOUNTED=
	! is_mounted "$TEST_MNT" || fail "'$TEST_MNT' is still mounted after the lazy unmount"
	writer_stop 3
}

crash_restart() {
	relocfs_mount
	check_acked "$TEST_MNT" $CRASH_FILES
}

# crash_outcome: where the job is after the restart
crash_outcome() {
	local js src dest
	js=$(status_json) || fail "status after the restart failed"
	src=$(printf '%s' "$js" | jq -r .source)
	dest=$(printf '%s' "$js" | jq -r '.destination // ""')
	if [ -n "$dest" ]; then
		echo migrating
	elif [ "$src" = "$TEST_DST" ]; then
		echo dest
	elif [ "$CRASH_MODE" = files ] && [ "$src" = "$TEST_SRC" ] && [ -e "$TEST_DST/a.img" ]; then
		echo dest	# the files are routed to DEST; the final check proves it
	elif [ "$src" = "$TEST_SRC" ]; then
		echo source
	else
		echo "unknown(source=$src)"
	fi
}

# crash_expect OUTCOME...: prints the outcome found; checks what it implies
crash_expect() {
	local got s f
	got=$(crash_outcome)
	CRASH_OUTCOME=$got
	for s in "$@"; do
		[ "$got" = "$s" ] && break
	done
	[ "$got" = "$s" ] || fail "after the restart the job is '$got', expected one of: $*; status: $(status_json)"
	say "  outcome after the restart: $got"
	case $got in
	migrating|cutover)
		for f in $CRASH_FILES; do
			s=$(file_state "$f")
			case $s in copying|merging|ready) ;;
			*) fail "'$f' is in state '$s' after the restart; status: $(status_json)" ;;
			esac
		done
		;;
	dest|source)
		# the delta store of a finished job is removed at the latest by the restart
		[ -z "$(find "$TEST_SRC/.relocfs" -mindepth 1 -maxdepth 1 -name 'job-*' 2>/dev/null)" ] ||
			fail "a delta store is left after the job ended: $(ls "$TEST_SRC/.relocfs")"
		;;
	esac
	if [ "$got" = source ]; then
		[ -z "$(find "$TEST_DST" -mindepth 1 -print -quit)" ] ||
			fail "DEST is not empty after the abort completed: $(ls -A "$TEST_DST")"
	fi
}

# crash_complete OUTCOME SEED
crash_complete() {
	local outcome=$1 seed=$2 backend
	crash_writer "$seed"
	sleep 0.3	# let it write a little (not a timing check)
	case $outcome in
	migrating|cutover)
		ctl wait --timeout 120 >/dev/null
		ctl cutover --timeout 60 >/dev/null
		backend=$TEST_DST
		;;
	abort)
		ctl abort >/dev/null
		backend=$TEST_SRC
		;;
	dest) backend=$TEST_DST ;;
	source) backend=$TEST_SRC ;;
	*) fail "crash_complete: unknown outcome '$outcome'" ;;
	esac
	sleep 0.3
	writer_stop 0
	check_final "$TEST_MNT" $CRASH_FILES
	[ "$CRASH_MODE" = files ] ||
		assert_eq "$backend" "$(status_field source)" "the directory served after the job ended"
	assert_eq "" "$(status_json | jq -r '.destination // ""')" "no job left"
	relocfs_umount
	check_final "$backend" $CRASH_FILES
	if [ "$backend" = "$TEST_SRC" ]; then
		[ ! -e "$TEST_DST/a.img" ] || fail "DEST still holds a.img after the abort"
	fi
	CASES=$((CASES + 1))
}

# RELOC_KEEP=DIR: on a failure, keep copies of SRC, DST, the model and the
# daemon's log in DIR for a post-mortem (the test directory is removed)
if [ -n "${RELOC_KEEP:-}" ]; then
	eval "orig_$(declare -f show_daemon_log)"
	show_daemon_log() {
		orig_show_daemon_log
		mkdir -p "$RELOC_KEEP"
		cp -a "$TEST_SRC" "$TEST_DST" "$MODEL" "$TEST_DIR/relocfs.log" "$TEST_DIR/writer.log" \
			"$RELOC_KEEP/" 2>/dev/null
		say "  kept SRC, DST, the model and the logs in '$RELOC_KEEP'"
	}
fi
