#!/bin/bash
test_description='kill -9 the daemon at random moments of each phase (copying, merging or ready, during an abort, during a cutover) under a writer: restarted with the same arguments it serves every flushed write, the job is where the moment allows, and finishing it leaves exactly what the writer wrote'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_crash.sh"
require_daemon

# RELOC_KILL_SEED picks the moments; the delays are printed, so a failing
# run can be replayed with the same seed
RANDOM=${RELOC_KILL_SEED:-4242}
say "  RELOC_KILL_SEED=${RELOC_KILL_SEED:-4242}"

# random_delay MAX_MS: set d to a delay in seconds below MAX_MS milliseconds
# (no subshell: it must draw from this shell's generator)
random_delay() {
	local ms=$((RANDOM % $1))
	d=$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))
}

# phase, how many moments, where the job may be after the restart, and
# how it is finished when it still migrates
MOMENTS='
copying  3 migrating        cutover
merging  3 migrating        cutover
abort    3 migrating,source abort
cutover  3 migrating,dest,source cutover
'
n=0
while read -r -u 3 phase count allowed finish; do
	[ -n "$phase" ] || continue
	for k in $(seq 1 "$count"); do
		n=$((n + 1))
		seed=$((9000 + n * 10))
		if [ $((n % 2)) = 0 ]; then CRASH_MODE=files; else CRASH_MODE=tree; fi
		crash_reset
		relocfs_mount
		crash_writer "$seed"
		case $phase in
		copying)
			random_delay 1500
			step "[$n] kill -9 while copying ($CRASH_MODE job), $d s into the copy"
			crash_migrate --rate 8M >/dev/null
			wait_until 60 eval '[ "$(file_field a.img bytes_copied)" -gt 0 ]' ||
				fail "the copy did not start"
			sleep "$d"
			assert_eq copying "$(file_state a.img)" "state of a.img before the kill"
			;;
		merging)
			random_delay 1000
			step "[$n] kill -9 while merging or ready ($CRASH_MODE job), $d s after ready"
			crash_migrate >/dev/null
			ctl wait --timeout 120 >/dev/null
			sleep "$d"
			;;
		abort)
			random_delay 40
			step "[$n] kill -9 during an abort ($CRASH_MODE job), $d s after it was sent"
			crash_migrate >/dev/null
			ctl wait --timeout 120 >/dev/null
			ctl abort >/dev/null 2>&1 &
			sleep "$d"
			;;
		cutover)
			random_delay 40
			step "[$n] kill -9 during a cutover ($CRASH_MODE job), $d s after it was sent"
			crash_migrate >/dev/null
			ctl wait --timeout 120 >/dev/null
			ctl cutover --timeout 60 >/dev/null 2>&1 &
			sleep "$d"
			;;
		esac
		kill -9 "$RELOCFS_PID"
		crash_reap
		wait	# the relocctl in the background, if any

		step "[$n] $phase: restarted, every flushed write is served; the job is one of: $allowed"
		crash_restart
		# shellcheck disable=SC2086
		crash_expect ${allowed//,/ }

		step "[$n] $phase: finish the job; the backend holds exactly what the writer wrote"
		case $CRASH_OUTCOME in
		migrating) crash_complete "$finish" $((seed + 1)) ;;
		*) crash_complete "$CRASH_OUTCOME" $((seed + 1)) ;;
		esac
	done
done 3<<<"$MOMENTS"
say "  $CASES kill moment(s) passed"
test_done
