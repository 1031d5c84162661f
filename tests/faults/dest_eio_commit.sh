#!/bin/bash
test_description='DEST fails (XFS shut down) right after the switch, before the commit point is durable: cutover reports that the switch is not durable, no flush is acknowledged from then on, and a restart with the same arguments rolls back to the source with every flushed write; a retry to another DEST cuts over'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_faults.sh"
require_daemon

step 'DEST is an XFS on a loop device; a writer works on two images in the mount; migrate, wait'
xfs_fs "$TEST_DST"
relocfs_mount
fault_writer 871
ctl migrate --to "$TEST_DST" >/dev/null
ctl wait --timeout 120 >/dev/null
writer_flushes

step 'cut over with a hook whose resume shuts DEST down: after the switch, before the syncs of the commit'
# the hooks' resumes run right after the hold is released and before the
# destination is synced and the record renamed (see ctl/cutover.c)
cat >"$TEST_DIR/shut" <<EOF
#!/bin/sh
[ "\$1" = resume ] || exit 0
xfs_io -x -c shutdown "$TEST_DST"
EOF
chmod +x "$TEST_DIR/shut"
if ctl cutover --hook "exec:$TEST_DIR/shut" --timeout 60 >"$TEST_DIR/cutover.out" 2>&1; then
	fail "cutover succeeded although DEST was shut down before the commit: $(cat "$TEST_DIR/cutover.out")"
fi
say "  cutover: $(cat "$TEST_DIR/cutover.out")"
[ "$(wc -l <"$TEST_DIR/cutover.out")" = 1 ] || fail "the error is more than one line"
case $(cat "$TEST_DIR/cutover.out") in
*"switched, but the switch could not be made durable"*restart*) ;;
*) fail "cutover does not say that the switch is not durable and what to do" ;;
esac

step 'no flush is acknowledged any more; the writer stops on EIO or keeps going, and never reads wrong data'
if sync "$TEST_MNT/b.img" 2>"$TEST_DIR/sync.err"; then
	fail "a flush was acknowledged after the switch failed to become durable"
fi
say "  sync b.img: $(cat "$TEST_DIR/sync.err")"
wait_until 10 eval '! writer_running' || true
writer_stop_after_eio

step 'restart with the same arguments, DEST still down: the job is rolled back to the source'
relocfs_umount
relocfs_mount
assert_eq "$TEST_SRC" "$(status_field source)" "served after the restart"
assert_eq "" "$(status_json | jq -r '.destination // ""')" "no job after the rollback"
grep -E 'rolling|left there' "$TEST_DIR/relocfs.log" | sed 's/^/  log: /'
grep -q 'rolling back to the source' "$TEST_DIR/relocfs.log" || fail "the daemon's log does not say that it rolled back"

step 'every write the writer saw flushed is served, and is in the source after unmounting'
check_acked "$TEST_MNT" $FAULT_FILES
relocfs_umount
check_acked "$TEST_SRC" $FAULT_FILES

step 'a writer again, and a retry to another DEST cuts over to exactly what it wrote'
relocfs_mount
fault_writer 872
retry_elsewhere
test_done
