#!/bin/bash
# run_integration.sh [NAME-PATTERN...]: run every tests/*/*.sh (mirror, reloc,
# vm, ...) with bash, each under a time limit, logging to
# $BUILD/test-logs/DIR-NAME.log; print the log of any that fails; tally.
# Not run: libraries (lib.sh, lib_*.sh) and tests/fuzz/ (make fuzz).
# A test exits 0 (pass), 77 (skip: a precondition cannot be met) or anything
# else (fail).  Patterns select tests by substring of "dir/name".
#
# Tests run side by side, RELOCFS_TEST_JOBS at a time (default 3): each has
# its own directory, mount and control socket.  A test whose file holds the
# line "# test: alone" runs after the others, by itself (it measures time, or
# needs the machine's CPUs).  Tests whose files hold the same line "# test:
# one-at-a-time GROUP" run beside others but never beside each other (each
# starts a Ceph cluster of its own, which two at once on two CPUs could not
# bring up in time).  With TALLY_FILE set (run_all.sh), results are
# appended there and the summary line is left to the caller.
# With RELOCFS_TRANSPORT set (uring, dev or uring-poll), every mount serves over that
# transport (tests/lib.sh), logs go to test-logs/$RELOCFS_TRANSPORT/, and
# results are named TRANSPORT/dir/name, so that two runs for the two
# transports can go side by side (run_all.sh).
cd "$(dirname "$0")/.." || exit 1
LOGDIR=${RELOCFS_BUILD:-build}/test-logs${RELOCFS_TRANSPORT:+/$RELOCFS_TRANSPORT}
TAG=${RELOCFS_TRANSPORT:+$RELOCFS_TRANSPORT/}
LIMIT=${RELOCFS_TEST_TIMEOUT:-600}
JOBS=${RELOCFS_TEST_JOBS:-3}
mkdir -p "$LOGDIR"

# selected NAME [PATTERN...]: no patterns, or NAME contains one of them
selected() {
	[ $# -le 1 ] && return 0
	local name=$1 pat
	shift
	for pat in "$@"; do
		case $name in *"$pat"*) return 0 ;; esac
	done
	return 1
}

# run_one TEST: run it, leave "RC SECONDS" in its .rc file
run_one() {
	local t=$1 dir name log rc=0 t0
	dir=$(basename "$(dirname "$t")")
	name=$dir-$(basename "$t" .sh)
	log=$LOGDIR/$name.log
	t0=$(date +%s)
	timeout -k 20 "$LIMIT" bash "$t" >"$log" 2>&1 </dev/null || rc=$?
	[ $rc = 124 ] && echo "killed after ${LIMIT} s" >>"$log"
	echo "$rc $(($(date +%s) - t0))" >"$LOGDIR/$name.rc"
}

# report TEST: print and tally its result
pass=0 fail=0 skip=0
report() {
	local t=$1 dir name log rc secs res
	dir=$(basename "$(dirname "$t")")
	name=$TAG$dir/$(basename "$t" .sh)
	log=$LOGDIR/$dir-$(basename "$t" .sh).log
	read -r rc secs <"$LOGDIR/$dir-$(basename "$t" .sh).rc"
	case $rc in
	0) pass=$((pass + 1)); res=pass; echo "PASS  $name (${secs} s)" ;;
	77) skip=$((skip + 1)); res=skip; echo "SKIP  $name: $(grep '^SKIP' "$log" | tail -n 1)" ;;
	*) fail=$((fail + 1)); res=fail
	   echo "FAIL  $name (exit $rc, ${secs} s), log $log:"
	   sed 's/^/    /' "$log" ;;
	esac
	[ -z "${TALLY_FILE:-}" ] || echo "$res $name" >>"$TALLY_FILE"
}

together=() alone=()
for t in tests/*/*.sh; do
	[ -f "$t" ] || continue
	case $t in tests/fuzz/*|*/lib.sh|*/lib_*.sh) continue ;; esac
	selected "$(basename "$(dirname "$t")")/$(basename "$t" .sh)" "$@" || continue
	if grep -q '^# test: alone' "$t"; then
		alone+=("$t")
	else
		together+=("$t")
	fi
done

# group_of TEST: its one-at-a-time group, or nothing
group_of() {
	sed -n 's/^# test: one-at-a-time \([a-z0-9_-]*\)$/\1/p' "$1" | head -n 1
}

# reap_one: wait for a running test to end and report it
reap_one() {
	local done_pid=
	wait -n -p done_pid 2>/dev/null || true
	if [ -n "${done_pid:-}" ] && [ -n "${running[$done_pid]:-}" ]; then
		report "${running[$done_pid]}"
		unset "running[$done_pid]" "groups[$done_pid]"
	fi
}

# group_busy G: a test of group G runs
group_busy() {
	local g
	for g in "${groups[@]}"; do
		[ "$g" != "$1" ] || return 0
	done
	return 1
}

# the pool: start tests until JOBS run, report each as it ends, in the
# order they end; a test whose group runs waits for a later slot while
# the tests after it go ahead
declare -A running=() groups=()
queue=("${together[@]}")
while [ ${#queue[@]} -gt 0 ]; do
	while [ ${#running[@]} -ge "$JOBS" ]; do
		reap_one
	done
	next=-1
	for i in "${!queue[@]}"; do
		g=$(group_of "${queue[$i]}")
		if [ -z "$g" ] || ! group_busy "$g"; then
			next=$i
			break
		fi
	done
	if [ "$next" = -1 ]; then
		reap_one	# every test left waits for its group
		continue
	fi
	t=${queue[$next]}
	g=$(group_of "$t")
	unset "queue[$next]"
	queue=("${queue[@]}")
	run_one "$t" &
	running[$!]=$t
	[ -z "$g" ] || groups[$!]=$g
done
for pid in "${!running[@]}"; do
	wait "$pid" 2>/dev/null || true
	report "${running[$pid]}"
done
for t in "${alone[@]}"; do
	run_one "$t"
	report "$t"
done

[ -n "${TALLY_FILE:-}" ] || echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
