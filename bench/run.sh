#!/bin/sh
# bench/run.sh: every relocfs benchmark, one after the other (what `make bench` runs; it builds
# nothing).  Each part writes bench/results/<date>-<part>.txt; this script adds
# bench/results/<date>-summary.txt with the target lines of every part.
#
#   BENCH_DIR=/path    scratch location (default /var/tmp/relocfs-bench; not tmpfs)
#   BENCH_PARTS="..."  which parts (default "mirror copier migration_iops flush cutover takeover
#                      jobs rbd rbd_copy hostmove")
#   see each part for its own knobs.  About 45 minutes with the defaults on an idle 2-core machine,
#   then hostmove (a TCG guest moved to another host twice, a 1 GiB disk copied four times): 6 to
#   10 minutes on a loaded one.
set -eu
BENCH_SRC=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_SRC/lib.sh"

PARTS=${BENCH_PARTS:-mirror copier migration_iops flush cutover takeover jobs rbd rbd_copy hostmove}
export BENCH_DATE BENCH_DIR RELOCFS_BUILD BENCH_RESULTS
check_prereqs
# every part over the transport relocfs picks by default: FUSE over io_uring
# where the kernel has it, turned on for the run (tests/uring_param.sh)
uring_was=
trap 'sh "$BENCH_SRC/../tests/uring_param.sh" put "$uring_was"' EXIT
trap 'exit 130' INT TERM
uring_was=$(sh "$BENCH_SRC/../tests/uring_param.sh" on)

SUMMARY=$(result_file summary)
failed=
t_start=$(now)
for p in $PARTS; do
	log "== $p =="
	t0=$(now)
	if sh "$BENCH_SRC/$p.sh"; then
		log "== $p done in $(elapsed "$t0" "$(now)") s"
	else
		log "== $p FAILED (exit $?)"
		failed="$failed $p"
	fi
done

{
	echo "relocfs benchmark summary ($(date -u '+%Y-%m-%d %H:%M UTC'), $(elapsed "$t_start" "$(now)") s)"
	echo
	machine_facts | grep -v '^loadavg'
	echo "loadavg:     $(cut -d' ' -f1-3 /proc/loadavg) (at the end)"
	echo
	for p in $PARTS; do
		f=$(result_file "$p")
		echo "== $p ($(basename "$f"))"
		if [ -s "$f" ] && ! echo " $failed " | grep -q " $p "; then
			sed -n '/^targets/,$p' "$f" | sed 1d
		else
			echo "  did not complete"
		fi
	done
	[ -z "$failed" ] || echo "FAILED:$failed"
} >"$SUMMARY"
[ "${BENCH_KEEP:-0}" = 1 ] || rm -f "$BENCH_DIR/.chunk"
echo
cat "$SUMMARY"
[ -z "$failed" ]
