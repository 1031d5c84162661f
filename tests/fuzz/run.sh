#!/bin/sh
# run.sh [SECONDS [TARGET...]]: build the libFuzzer targets (ASan, UBSan) into
# build/fuzz/ and run each for SECONDS (default 60) on a working copy of its
# seed corpus tests/fuzz/corpus/NAME/, so the corpus in the tree is not
# touched.  Targets (default: all):
#   proto   the control protocol parser, ctl/proto.c (fuzz_proto.c)
#   state   the mount's record, ctl/mount_state.c (fuzz_state.c)
# Prints the number of executions of each; exits non-zero if a fuzzer found a
# crash (the reproducer is left in build/fuzz/NAME/, named crash-*, leak-* or
# timeout-*; replay it with build/fuzz/fuzz_NAME FILE).  FUZZ_FLAGS adds
# libFuzzer options (e.g. -len_control=0 to try long inputs at once, -jobs=2);
# FUZZ_CFLAGS adds compiler options (e.g. -DFUZZ_STRICT_ERR, see the targets).
# Needs clang with libFuzzer.
cd "$(dirname "$0")/../.." || exit 1
SECS=${1:-60}
[ $# -gt 0 ] && shift
TARGETS=${*:-proto state}
OUT=${RELOCFS_BUILD:-build}/fuzz
CC=${FUZZ_CC:-clang}

case $SECS in
''|*[!0-9]*) echo "usage: $0 [SECONDS [proto|state]...]" >&2; exit 2 ;;
esac
if ! command -v "$CC" >/dev/null 2>&1; then
	echo "'$CC' not found: the fuzzer needs clang with libFuzzer" >&2
	exit 77
fi

# run_one NAME MODULE MAX_LEN: build fuzz_NAME from tests/fuzz/fuzz_NAME.c and
# MODULE, run it for SECS seconds; returns the fuzzer's exit status
run_one() {
	name=$1 module=$2 maxlen=$3
	bin=$OUT/fuzz_$name
	work=$OUT/corpus/$name
	log=$OUT/fuzz_$name.log
	mkdir -p "$work" "$OUT/$name" || return 1
	# shellcheck disable=SC2046
	# shellcheck disable=SC2086
	$CC -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	    ${FUZZ_CFLAGS:-} -D_GNU_SOURCE -I. $(pkg-config --cflags libxxhash) \
	    -o "$bin" "tests/fuzz/fuzz_$name.c" "$module" \
	    $(pkg-config --libs libxxhash) -lm || { echo "cannot build '$bin'" >&2; return 1; }
	rc=0
	# shellcheck disable=SC2086
	"$bin" -max_total_time="$SECS" -print_final_stats=1 -max_len="$maxlen" -timeout=10 \
	    ${FUZZ_FLAGS:-} -artifact_prefix="$OUT/$name"/ "$work" "tests/fuzz/corpus/$name" >"$log" 2>&1 || rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	echo "fuzz_$name: ${runs:-?} executions in ${SECS} s, corpus $(ls "$work" | wc -l) inputs, log $log"
	if [ "$rc" != 0 ]; then
		echo "fuzz_$name: the fuzzer failed (exit $rc):"
		grep -E 'ERROR|SUMMARY|invariant|refuses|Test unit written' "$log" | sed 's/^/    /'
	fi
	return "$rc"
}

status=0
for t in $TARGETS; do
	case $t in
	proto) run_one proto ctl/proto.c 4096 || status=1 ;;
	state) run_one state ctl/mount_state.c 16384 || status=1 ;;
	*) echo "unknown fuzz target '$t' (proto, state)" >&2; exit 2 ;;
	esac
done
exit "$status"
