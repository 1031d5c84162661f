#!/bin/bash
test_description='the worker killed at each step of a request'"'"'s way through the transport (read or recorded, replied, committed) while small requests stream from every CPU: the next worker finishes each request, and no call fails'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/../crash/lib_crash.sh"
. "$HERE/lib_worker.sh"
require_tool iostorm
require_root

# The crash points of each transport, in the order a request meets them:
#   dev-request-read        read from /dev/fuse, nothing done (the kernel
#                           resends it to the next worker)
#   dev-reply-written       the reply written, its record not yet closed
#   ring-request-recording  an entry's record half way from the last
#                           request (replied) to the one just handed over
#   ring-reply-writing      a large reply half written over its request
#   ring-reply-staged       a small reply staged, the entry not yet written
#   ring-commit-prepared    the commit prepared, not submitted
# A round arms one of them on a new mount: it kills the worker once, after
# letting SKIP passes by (two crash points armed together can fire in two
# threads of one worker at once, and one of them then goes unseen).
dev_points="dev-request-read dev-reply-written"
ring_points="ring-request-recording ring-reply-writing ring-reply-staged ring-commit-prepared"

deaths() {
	"$RELOCCTL" -m "$TEST_MNT" status --json 2>/dev/null | jq -r '.worker_deaths // 0'
}

deaths_reach() { [ "$(deaths)" -ge "$1" ]; }

want=dev points=$dev_points
if [ "${RELOCFS_TRANSPORT:-}" = uring ] || [ "${RELOCFS_TRANSPORT:-}" = uring-poll ] ||
   { [ -z "${RELOCFS_TRANSPORT:-}" ] && [ "$(cat /sys/module/fuse/parameters/enable_uring 2>/dev/null)" = Y ]; }; then
	want=uring points=$ring_points
fi
round=0
for skip in ${RELOCFS_POINT_SKIPS:-300 5003}; do
	for point in $points; do
		round=$((round + 1))
		mark=$(stat -c %s "$TEST_DIR/relocfs.log" 2>/dev/null || echo 0)
		step "[$round] $point kills the worker after $skip passes"
		RELOCFS_CRASHPOINT_SCOPE=worker crash_mount_armed "$point" "$skip"
		assert_eq "$want" "$("$RELOCCTL" -m "$TEST_MNT" status --json | jq -r .transport)" \
			"the transport whose crash points are armed"
		rm -f "$TEST_MNT/iostorm.stop"
		"$TOOLS/iostorm" "$TEST_MNT" 600 >"$TEST_DIR/storm.log" 2>&1 &
		STORM_PID=$!
		wait_until 120 deaths_reach 1 || true
		sleep 1	# requests go on after the kill
		touch "$TEST_MNT/iostorm.stop"
		rc=0
		wait "$STORM_PID" || rc=$?
		got=$(deaths)
		say "    $got worker death(s); $(tail -n 1 "$TEST_DIR/storm.log")"
		is_mounted "$TEST_MNT" || fail "the mount went away"
		[ "$rc" = 0 ] || fail "$(grep -v '^iostorm: [0-9]* calls' "$TEST_DIR/storm.log" | head -n 3)"
		tail -c +"$((mark + 1))" "$TEST_DIR/relocfs.log" | grep -q "crash point '$point' reached" ||
			fail "crash point $point was not reached"
		assert_eq 1 "$got" "worker deaths"
		rm -f "$TEST_MNT/iostorm.stop"
		relocfs_umount
	done
done
test_done
