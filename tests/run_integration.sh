#!/bin/sh
# run_integration.sh [NAME-PATTERN...]: run every tests/*/*.sh (mirror, reloc,
# vm, ...) with bash, each under a time limit, logging to
# $BUILD/test-logs/DIR-NAME.log; print the log of any that fails; tally.
# Not run: libraries (lib.sh, lib_*.sh) and tests/fuzz/ (make fuzz).
# A test exits 0 (pass), 77 (skip: a precondition cannot be met) or anything
# else (fail).  Patterns select tests by substring of "dir/name".
# With TALLY_FILE set (run_all.sh), results are appended there and the
# summary line is left to the caller.
cd "$(dirname "$0")/.." || exit 1
LOGDIR=${RELOCFS_BUILD:-build}/test-logs
LIMIT=${RELOCFS_TEST_TIMEOUT:-600}
mkdir -p "$LOGDIR"
pass=0 fail=0 skip=0

# selected NAME [PATTERN...]: no patterns, or NAME contains one of them
selected() {
	[ $# -le 1 ] && return 0
	sel_name=$1
	shift
	for sel_pat in "$@"; do
		case $sel_name in *"$sel_pat"*) return 0 ;; esac
	done
	return 1
}

for t in tests/*/*.sh; do
	[ -f "$t" ] || continue
	case $t in tests/fuzz/*|*/lib.sh|*/lib_*.sh) continue ;; esac
	dir=$(basename "$(dirname "$t")")
	name=$dir/$(basename "$t" .sh)
	selected "$name" "$@" || continue
	log=$LOGDIR/$dir-$(basename "$t" .sh).log
	rc=0
	timeout -k 20 "$LIMIT" bash "$t" >"$log" 2>&1 </dev/null || rc=$?
	case $rc in
	0) pass=$((pass + 1)); res=pass; echo "PASS  $name" ;;
	77) skip=$((skip + 1)); res=skip; echo "SKIP  $name: $(grep '^SKIP' "$log" | tail -n 1)" ;;
	*) fail=$((fail + 1)); res=fail
	   [ $rc = 124 ] && echo "killed after ${LIMIT} s" >>"$log"
	   echo "FAIL  $name (exit $rc), log $log:"
	   sed 's/^/    /' "$log" ;;
	esac
	[ -z "${TALLY_FILE:-}" ] || echo "$res $name" >>"$TALLY_FILE"
done

[ -n "${TALLY_FILE:-}" ] || echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
