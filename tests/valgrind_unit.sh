#!/bin/sh
# valgrind_unit.sh [BINARY...]: run unit test binaries under valgrind memcheck
# (default: one per tests/unit/test_*.c, i.e. $BUILD/tests/test_*, built with
# make if missing).  Any memcheck error, leak, or test failure fails the
# binary; its log, $BUILD/test-logs/NAME.valgrind.log, is printed then.
# Exit status: 0 when every binary passed, 1 otherwise, 77 without valgrind.
cd "$(dirname "$0")/.." || exit 1
BUILD=${RELOCFS_BUILD:-build}
LOGDIR=$BUILD/test-logs
mkdir -p "$LOGDIR" || exit 1

if ! command -v valgrind >/dev/null 2>&1; then
	echo "valgrind is not installed (run tests/deps.sh)" >&2
	exit 77
fi

if [ $# -eq 0 ]; then
	for src in tests/unit/test_*.c; do
		[ -f "$src" ] || continue
		set -- "$@" "$BUILD/tests/$(basename "$src" .c)"
	done
fi

pass=0 fail=0
for bin in "$@"; do
	name=$(basename "$bin")
	log=$LOGDIR/$name.valgrind.log
	[ -x "$bin" ] || make -s "$bin" >"$log" 2>&1
	if [ ! -x "$bin" ]; then
		echo "FAIL  valgrind/$name: '$bin' is not built and make cannot build it:"
		sed 's/^/    /' "$log"
		fail=$((fail + 1))
		continue
	fi
	rc=0
	timeout -k 10 900 valgrind --error-exitcode=1 --leak-check=full --track-fds=no \
	    --errors-for-leak-kinds=definite,possible --show-leak-kinds=definite,possible \
	    "$bin" >"$log" 2>&1 || rc=$?
	# one summary per process (forked children report too)
	errors=$(sed -n 's/^==[0-9]*== ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" |
		awk '{ n += $1 } END { print n + 0 }')
	failed=$(sed -n 's/^\[  FAILED  \] \([a-z_0-9]*\)$/\1/p' "$log" | sort -u | tr '\n' ' ')
	if [ "$rc" = 0 ]; then
		pass=$((pass + 1))
		echo "PASS  valgrind/$name: 0 memcheck errors"
	else
		fail=$((fail + 1))
		echo "FAIL  valgrind/$name (exit $rc): $errors memcheck error(s)${failed:+; tests failed: $failed}; log $log:"
		grep -v -e '^--[0-9]*-- ' -e '^\[       OK \]' -e '^\[ RUN      \]' "$log" | sed 's/^/    /'
	fi
done

echo "valgrind: $pass passed, $fail failed"
[ "$fail" = 0 ]
