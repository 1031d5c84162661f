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
#   COPIER_SIZE_MIB  image size (default 1024); COPIER_HOLE_EVERY_MIB: a 1 MiB hole every N MiB
#                    (default 16, i.e. ~6% holes)
set -eu
. "$(dirname "$0")/lib.sh"

SIZE=${COPIER_SIZE_MIB:-1024}
EVERY=${COPIER_HOLE_EVERY_MIB:-16}
POLL=${COPIER_POLL:-0.02}
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

# cp, plain
mkdir "$W/cp1"
drop_caches
t0=$(now); cp --sparse=always "$W/src/img" "$W/cp1/img"; t1=$(now)
t_cp=$(elapsed "$t0" "$t1")
cmp "$W/src/img" "$W/cp1/img" || die "cp made a different copy"
rm -rf "$W/cp1"

# cp, then fdatasync of the copy
mkdir "$W/cp2"
drop_caches
t0=$(now); cp --sparse=always "$W/src/img" "$W/cp2/img"; sync -d "$W/cp2/img"; t1=$(now)
t_cps=$(elapsed "$t0" "$t1")
rm -rf "$W/cp2"

# relocfs migrate until ready
drop_caches
t0=$(now)
ctl migrate --to "$W/dst" >"$W/migrate.out"
polls=0
while :; do
	polls=$((polls + 1))
	rc=0; poll_ready || rc=$?
	[ $rc = 0 ] && break
	[ $rc = 2 ] && die "migration failed: $STATUS"
	sleep "$POLL"
done
st=$STATUS
t1=$(now)
t_rf=$(elapsed "$t0" "$t1")
rate=$(echo "$st" | jq '.copy_rate // 0')
ctl wait >/dev/null
ctl cutover >"$W/cutover.out"
cmp "$W/src/img" "$W/dst/img" || die "relocfs made a different copy"
dalloc=$(du -k "$W/dst/img" | cut -f1)

r=$(ratio "$t_cp" "$t_rf")
rs=$(ratio "$t_cps" "$t_rf")
{
	echo "relocfs copier benchmark: base copy of one image against cp"
	echo
	machine_facts
	echo "image:       ${SIZE} MiB, a 1 MiB hole every ${EVERY} MiB, ${alloc} KiB allocated"
	echo "relocfs:     migrate of the whole tree, default rate (unlimited), no guest I/O;"
	echo "             timed from 'relocctl migrate' to the first 'status --json' showing ready"
	echo "             (polled every ${POLL} s, $polls polls); copy allocated ${dalloc} KiB"
	echo "cp:          coreutils $(cp --version | head -1 | awk '{print $NF}') cp --sparse=always, same filesystem"
	echo
	printf '%-40s %10s\n' "cp --sparse=always (s)" "$t_cp"
	printf '%-40s %10s\n' "cp --sparse=always + sync -d (s)" "$t_cps"
	printf '%-40s %10s\n' "relocfs migrate -> ready (s)" "$t_rf"
	printf '%-40s %10s\n' "relocfs copier rate (MiB/s, its own)" "$(echo "scale=1; $rate / 1048576" | bc)"
	echo
	echo "targets:"
	printf '  %-46s %7s  %s\n' "cp time / relocfs time >= 1.0" "$r" "$(verdict "$r" '>=' 1.0)"
	printf '  %-46s %7s  %s\n' "(cp + sync) time / relocfs time (info)" "$rs" "-"
} >"$OUT"
cat "$OUT"
