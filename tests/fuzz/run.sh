#!/bin/sh
# run.sh [SECONDS]: build the control-protocol fuzzer (libFuzzer, ASan, UBSan)
# into build/fuzz/ and run it for SECONDS (default 60) on a working copy of
# tests/fuzz/corpus/proto/, so the seed corpus in the tree is not touched.
# Prints the number of executions; exits non-zero if the fuzzer found a crash
# (the reproducer is left in build/fuzz/, named crash-*, leak-* or timeout-*).
# Needs clang with libFuzzer.
cd "$(dirname "$0")/../.." || exit 1
SECS=${1:-60}
OUT=${RELOCFS_BUILD:-build}/fuzz
CC=${FUZZ_CC:-clang}
BIN=$OUT/fuzz_proto
WORK=$OUT/corpus/proto
LOG=$OUT/fuzz_proto.log

case $SECS in
''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
if ! command -v "$CC" >/dev/null 2>&1; then
	echo "'$CC' not found: the fuzzer needs clang with libFuzzer" >&2
	exit 77
fi
mkdir -p "$OUT" "$WORK" || exit 1

# shellcheck disable=SC2046
$CC -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -D_GNU_SOURCE -I. $(pkg-config --cflags libxxhash) \
    -o "$BIN" tests/fuzz/fuzz_proto.c ctl/proto.c \
    $(pkg-config --libs libxxhash) -lm || { echo "cannot build '$BIN'" >&2; exit 1; }

rc=0
"$BIN" -max_total_time="$SECS" -print_final_stats=1 -max_len=4096 -timeout=10 \
    -artifact_prefix="$OUT"/ "$WORK" tests/fuzz/corpus/proto >"$LOG" 2>&1 || rc=$?

runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOG" | tail -n 1)
echo "fuzz_proto: ${runs:-?} executions in ${SECS} s, corpus $(ls "$WORK" | wc -l) inputs, log $LOG"
if [ "$rc" != 0 ]; then
	echo "fuzz_proto: the fuzzer failed (exit $rc):"
	grep -E 'ERROR|SUMMARY|invariant|Test unit written' "$LOG" | sed 's/^/    /'
fi
exit "$rc"
