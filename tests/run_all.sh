#!/bin/sh
# run_all.sh: unit tests, then integration tests; the last line of output is
# "N passed, N failed, N skipped" over both, and the exit status is non-zero
# if anything failed.  make check runs this after building everything.
#   RELOCFS_TEST_JOBS         tests side by side for the first transport (3)
#   RELOCFS_TEST_JOBS_SECOND  ... for the second one, at the same time (2)
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
# The integration tests on both transports, side by side: every suite on
# the transport relocfs serves with by default here (io_uring where the
# kernel offers it), and the suites that exercise the request path (mirror,
# relocation, crashes, worker deaths, guests) on the other one too, with
# fewer jobs.  Patterns given select within both.
if [ "$(cat /sys/module/fuse/parameters/enable_uring 2>/dev/null)" = Y ]; then
	first=uring second=dev
else
	first=dev second=
	echo "note: this kernel does not offer FUSE over io_uring: the tests run over /dev/fuse only"
fi
RELOCFS_TRANSPORT=$first bash tests/run_integration.sh "$@" &
p1=$!
if [ -n "$second" ]; then
	if [ $# = 0 ]; then
		set -- mirror/ reloc/ crash/ worker/ vm/
	fi
	RELOCFS_TRANSPORT=$second RELOCFS_TEST_JOBS=${RELOCFS_TEST_JOBS_SECOND:-2} \
		bash tests/run_integration.sh "$@" &
	wait $!
fi
wait $p1

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
