#!/bin/sh
# bench/copier.sh: relocfs's base copy against cp --sparse=always of the same backing file
# to a fresh directory on the same filesystem, caches dropped before each.
#
# relocfs time: from just before `relocctl migrate` to the first `status --json` poll (every
# COPIER_POLL s, default 0.02) that shows every file "ready"; this includes the migrate command
# (delta store setup) and the copier's fdatasync at the end of the base copy, and at most one poll
# interval of overshoot.  cp is timed alone and again with a `sync -d` of the copy afterwards,
# since relocfs's copy is durable when it reports ready and cp's is not.
#
#   COPIER_REPS      rounds (default 3; medians reported)
#   COPIER_SIZE_MIB  image size (default 1024); COPIER_HOLE_EVERY_MIB: a 1 MiB hole every N MiB
#                    (default 16, i.e. ~6% holes)
set -eu
. "$(dirname "$0")/lib.sh"

SIZE=${COPIER_SIZE_MIB:-1024}
EVERY=${COPIER_HOLE_EVERY_MIB:-16}
POLL=${COPIER_POLL:-0.02}
REPS=${COPIER_REPS:-3}
check_prereqs

W=$BENCH_DIR/copier
OUT=$(result_file copier)
cleanup() { unmount_relocfs; [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$W"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$W"
mkdir -p "$W/src" "$W/mnt"

log "copier: writing a ${SIZE} MiB image with a 1 MiB hole every ${EVERY} MiB"
make_image "$W/src/img" "$SIZE" "$EVERY"
mount_relocfs "$W/src" "$W/mnt"
alloc=$(du -k "$W/src/img" | cut -f1)

# median of numbers on stdin
median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# one round: cp, cp + sync, relocfs; rounds alternate so that drift in the host's load
# (shared disk, other tenants) hits every method alike
cur=$W/src			# the directory the mount currently serves
: >"$W/times"
k=1
while [ $k -le "$REPS" ]; do
	# cp, plain
	mkdir "$W/cp1"
	drop_caches
	t0=$(now); cp --sparse=always "$cur/img" "$W/cp1/img"; t1=$(now)
	t_cp=$(elapsed "$t0" "$t1")
	[ $k = 1 ] && { cmp "$cur/img" "$W/cp1/img" || die "cp made a different copy"; }
	rm -rf "$W/cp1"

	# cp, then fdatasync of the copy
	mkdir "$W/cp2"
	drop_caches
	t0=$(now); cp --sparse=always "$cur/img" "$W/cp2/img"; sync -d "$W/cp2/img"; t1=$(now)
	t_cps=$(elapsed "$t0" "$t1")
	rm -rf "$W/cp2"

	# relocfs migrate until ready
	to=$W/dst$k
	drop_caches
	t0=$(now)
	ctl migrate --to "$to" >/dev/null
	polls=0
	while :; do
		polls=$((polls + 1))
		rc=0; poll_ready || rc=$?
		[ $rc = 0 ] && break
		[ $rc = 2 ] && die "migration failed: $STATUS"
		sleep "$POLL"
	done
	t1=$(now)
	t_rf=$(elapsed "$t0" "$t1")
	rate=$(echo "$STATUS" | jq '.copy_rate // 0')
	ctl wait >/dev/null
	ctl cutover >/dev/null
	[ $k = 1 ] && { cmp "$cur/img" "$to/img" || die "relocfs made a different copy"; }
	dalloc=$(du -k "$to/img" | cut -f1)
	[ "$cur" = "$W/src" ] || rm -rf "$cur"
	cur=$to
	echo "$k $t_cp $t_cps $t_rf $(echo "scale=1; $rate / 1048576" | bc) $polls" >>"$W/times"
	log "copier round $k: cp $t_cp s, cp+sync $t_cps s, relocfs $t_rf s"
	k=$((k + 1))
done
t_cp=$(awk '{print $2}' "$W/times" | median)
t_cps=$(awk '{print $3}' "$W/times" | median)
t_rf=$(awk '{print $4}' "$W/times" | median)
rate=$(awk '{print $5}' "$W/times" | median)

r=$(ratio "$t_cp" "$t_rf")
rs=$(ratio "$t_cps" "$t_rf")
{
	echo "relocfs copier benchmark: base copy of one image against cp"
	echo
	machine_facts
	echo "image:       ${SIZE} MiB, a 1 MiB hole every ${EVERY} MiB, ${alloc} KiB allocated"
	echo "relocfs:     migrate of the whole tree, default rate (unlimited), no guest I/O;"
	echo "             timed from 'relocctl migrate' to the first 'status --json' showing ready"
	echo "             (polled every ${POLL} s); the copy allocated ${dalloc} KiB"
	echo "cp:          coreutils $(cp --version | head -1 | awk '{print $NF}') cp --sparse=always, same filesystem"
	echo "rounds:      $REPS, each cp, cp + sync -d, relocfs in turn, caches dropped before each"
	echo
	echo "round      cp_s  cp+sync_s  relocfs_s  copier_MiB/s  polls"
	awk '{printf "%5d %9s %10s %10s %13s %6s\n", $1, $2, $3, $4, $5, $6}' "$W/times"
	echo
	printf '%-40s %10s\n' "median cp --sparse=always (s)" "$t_cp"
	printf '%-40s %10s\n' "median cp --sparse=always + sync -d (s)" "$t_cps"
	printf '%-40s %10s\n' "median relocfs migrate -> ready (s)" "$t_rf"
	printf '%-40s %10s\n' "median relocfs copier rate (MiB/s, own)" "$rate"
	echo
	echo "targets:"
	printf '  %-46s %7s  %s\n' "cp time / relocfs time >= 1.0 (medians)" "$r" "$(verdict "$r" '>=' 1.0)"
	printf '  %-46s %7s  %s\n' "(cp + sync) time / relocfs time (info)" "$rs" "-"
} >"$OUT"
cat "$OUT"
