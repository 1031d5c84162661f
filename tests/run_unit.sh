#!/bin/sh
# run_unit.sh BINARY...: run each cmocka unit test binary, log its output to
# $BUILD/test-logs/NAME.log, print the log of any that fails, and tally.
# Exit 77 from a binary counts as skipped.  Exits 1 if any failed.
# With TALLY_FILE set (run_all.sh), results are appended there and the
# summary line is left to the caller.
cd "$(dirname "$0")/.." || exit 1
LOGDIR=${RELOCFS_BUILD:-build}/test-logs
mkdir -p "$LOGDIR"
pass=0 fail=0 skip=0

for bin in "$@"; do
	name=$(basename "$bin")
	log=$LOGDIR/$name.log
	if [ ! -x "$bin" ]; then
		echo "'$bin' was not built" >"$log"
		rc=127
	else
		rc=0
		timeout -k 10 300 "$bin" >"$log" 2>&1 || rc=$?
	fi
	case $rc in
	0) pass=$((pass + 1)); res=pass; echo "PASS  unit/$name" ;;
	77) skip=$((skip + 1)); res=skip; echo "SKIP  unit/$name: $(tail -n 1 "$log")" ;;
	*) fail=$((fail + 1)); res=fail; echo "FAIL  unit/$name (exit $rc), log $log:"
	   sed 's/^/    /' "$log" ;;
	esac
	[ -z "${TALLY_FILE:-}" ] || echo "$res unit/$name" >>"$TALLY_FILE"
done

[ -n "${TALLY_FILE:-}" ] || echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
