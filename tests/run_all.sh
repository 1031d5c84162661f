#!/bin/sh
# run_all.sh: unit tests, then integration tests; the last line of output is
# "N passed, N failed, N skipped" over both, and the exit status is non-zero
# if anything failed.  make check runs this after building everything.
#   RELOCFS_TEST_JOBS      integration tests side by side (3)
#   RELOCFS_TRANSPORT      uring, dev or uring-poll: the integration tests on
#                          that one only
#   RELOCFS_SECOND_SUITES  what runs on the second transport (see below)
#   RELOCFS_POLL_SUITES    what runs over io_uring with -o poll (see below)
cd "$(dirname "$0")/.." || exit 1
BUILD=${RELOCFS_BUILD:-build}
mkdir -p "$BUILD/test-logs"
TALLY_FILE=$BUILD/test-logs/tally
export TALLY_FILE
: >"$TALLY_FILE"

# the unit binaries are not part of "make all": build them here, each on its
# own so that one that does not compile fails alone
units=
for src in tests/unit/test_*.c; do
	[ -f "$src" ] || continue
	bin=$BUILD/tests/$(basename "$src" .c)
	if ! ${MAKE:-make} -s BUILD="$BUILD" "$bin" >"$BUILD/test-logs/build-$(basename "$src" .c).log" 2>&1; then
		echo "FAIL  unit/$(basename "$src" .c) does not build:"
		sed 's/^/    /' "$BUILD/test-logs/build-$(basename "$src" .c).log"
		echo "fail unit/$(basename "$src" .c)" >>"$TALLY_FILE"
		continue
	fi
	units="$units $bin"
done
# shellcheck disable=SC2086
[ -z "$units" ] || sh tests/run_unit.sh $units
# the same binaries under valgrind memcheck (not under the sanitizers, which
# do not mix with it)
if [ -n "$units" ] && [ -z "${RELOCFS_NO_VALGRIND:-}" ]; then
	# shellcheck disable=SC2086
	sh tests/valgrind_unit.sh $units 2>&1 | tee "$BUILD/test-logs/valgrind.out" | grep -v '^valgrind: '
	sed -n 's#^PASS  \(valgrind/[a-z_0-9]*\).*#pass \1#p; s#^FAIL  \(valgrind/[a-z_0-9]*\).*#fail \1#p' \
		"$BUILD/test-logs/valgrind.out" >>"$TALLY_FILE"
	grep -q '^valgrind is not installed' "$BUILD/test-logs/valgrind.out" &&
		echo "fail valgrind (not installed)" >>"$TALLY_FILE"
fi
# The integration tests on both transports, one after the other (side by
# side they would share the 2 CPUs with twice the tests, and the tests that
# measure time would measure that): every suite on the transport relocfs
# serves with by default here (FUSE over io_uring where the kernel offers
# it), then the suites whose outcome depends on how requests reach relocfs
# on the other one: the mirror (every operation's request and reply), the
# relocation tests (requests parked at a hold and replayed from another
# thread), worker death and hand-over, the daemon killed and recovered,
# and real guests (RELOCFS_SECOND_SUITES; docs/testing.md says why the
# rest run once).
# Then the mirror, worker-death and crash-point suites over io_uring with
# -o poll (RELOCFS_POLL_SUITES): ring threads that look for work instead of
# sleeping take requests and completions on another path.  Patterns given
# select within all three.  RELOCFS_TRANSPORT=uring, dev or uring-poll runs
# everything on that transport only.
# FUSE over io_uring is off by default in the kernel: the run turns it on
# where it may and puts it back at the end (tests/uring_param.sh)
uring_was=
trap 'sh tests/uring_param.sh put "$uring_was"' EXIT
trap 'exit 130' INT TERM
[ "${RELOCFS_TRANSPORT:-}" = dev ] || uring_was=$(sh tests/uring_param.sh on)
third=
if [ -n "${RELOCFS_TRANSPORT:-}" ]; then
	first=$RELOCFS_TRANSPORT second=
elif [ "$(cat /sys/module/fuse/parameters/enable_uring 2>/dev/null)" = Y ]; then
	first=uring second=dev third=uring-poll
else
	first=dev second=
	echo "note: FUSE over io_uring is not on here (a kernel without it, or enable_uring off and not root): the tests run over /dev/fuse only"
fi
patterns=$*
RELOCFS_TRANSPORT=$first bash tests/run_integration.sh "$@"
if [ -n "$second" ]; then
	if [ -z "$patterns" ]; then
		# shellcheck disable=SC2086
		set -- ${RELOCFS_SECOND_SUITES:-mirror/ reloc/ worker/ crash/ vm/}
	fi
	RELOCFS_TRANSPORT=$second bash tests/run_integration.sh "$@"
fi
if [ -n "$third" ]; then
	if [ -z "$patterns" ]; then
		# shellcheck disable=SC2086
		set -- ${RELOCFS_POLL_SUITES:-mirror/ worker/ crash/crash_points}
	fi
	RELOCFS_TRANSPORT=$third bash tests/run_integration.sh "$@"
fi

# make asan/tsan: every sanitizer report of every process (daemons killed on
# purpose too) went to a file there; any report fails the run.  A report is
# what the sanitizers print as one ("ERROR: AddressSanitizer:", "WARNING:
# ThreadSanitizer:", UBSan's "runtime error:"); a file with only the warning
# of an allocation that returned NULL on purpose (test_bitmap) is not.
if [ -n "${RELOCFS_SANITIZER_DIR:-}" ]; then
	reports=$(grep -lE 'ERROR: [A-Za-z]+Sanitizer:|WARNING: ThreadSanitizer:|runtime error:' \
		-r "$RELOCFS_SANITIZER_DIR" 2>/dev/null | sort)
	for r in $(find "$RELOCFS_SANITIZER_DIR" -type f -size +0 2>/dev/null | sort); do
		echo "$reports" | grep -qxF "$r" || echo "note: not a report: $r: $(head -c 200 "$r")"
	done
	if [ -n "$reports" ]; then
		for r in $reports; do
			echo "FAIL  sanitizer report $r:"
			sed -n '1,40s/^/    /p' "$r"
		done
		echo "fail sanitizer ($(echo "$reports" | wc -l) report files)" >>"$TALLY_FILE"
	else
		echo "PASS  sanitizer: no report from any process"
		echo "pass sanitizer" >>"$TALLY_FILE"
	fi
fi

pass=$(grep -c '^pass ' "$TALLY_FILE")
fail=$(grep -c '^fail ' "$TALLY_FILE")
skip=$(grep -c '^skip ' "$TALLY_FILE")
if [ "$fail" != 0 ]; then
	echo "failed:$(sed -n 's/^fail / /p' "$TALLY_FILE" | tr -d '\n')"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
