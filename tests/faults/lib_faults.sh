# tests/faults/lib_faults.sh: sourced by the fault tests after tests/lib.sh
# and tests/reloc/lib_reloc.sh.
#
#   xfs_fs DIR            an XFS on a sparse 320 MiB loop file, mounted at DIR
#                         (unmounted and detached by lib_reloc's clean-up)
#   xfs_shutdown DIR      make that XFS fail every request with EIO (a real
#                         fault: the filesystem is shut down, as after a
#                         metadata I/O error)
#   fault_writer SEED     the writer on $FAULT_FILES in the mount
#   no_error_in_log       the writer has seen no failed call so far
#   wait_some_failed      until a file of $FAULT_FILES is in state failed
#                         (60 s); says each file's state and error
#   retry_elsewhere       with the writer running, a migration to a second
#                         DEST ($TEST_DIR/dst2) cuts over; then the writer
#                         stops, and the mount and dst2 hold what it wrote

FAULT_FILES="a.img b.img"

xfs_fs() {
	local dir=$1 img dev
	require_root
	require_cmd losetup mkfs.xfs xfs_io
	img=$TEST_DIR/$(basename "$dir").xfs
	truncate -s 320M "$img"
	dev=$(losetup -f --show "$img" 2>/dev/null) || skip "no loop device available"
	LOOP_DEVS+=("$dev")
	mkfs.xfs -q -f "$dev" >/dev/null 2>&1 || fail "mkfs.xfs on '$dev' failed"
	mkdir -p "$dir"
	mount -t xfs "$dev" "$dir" || skip "cannot mount XFS from a loop device"
	LOOP_MNTS+=("$dir")
}

xfs_shutdown() {
	xfs_io -x -c shutdown "$1" || fail "xfs_io -x -c shutdown '$1' failed"
	# the fault must be real: a new file cannot be made there any more
	! touch "$1/.probe" 2>/dev/null || fail "'$1' still takes writes after the shutdown"
}

fault_writer() {
	writer_start --seed "$1" --direct --flush-every 8 --delay-us 1000 \
		--size 32M --file "$TEST_MNT/a.img" --size 4M --file "$TEST_MNT/b.img"
}

# writer_flushes: the writer runs and has flushed since the last call
# (its acked models are replaced after every successful flush)
writer_flushes() {
	local before
	before=$(stat -c %i "$MODEL/a.img.acked" "$MODEL/b.img.acked" | md5sum)
	wait_until 30 eval '[ "$(stat -c %i "$MODEL/a.img.acked" "$MODEL/b.img.acked" | md5sum)" != "$before" ] || ! writer_running' ||
		fail "the writer has not flushed for 30 s"
	writer_running || fail "the writer stopped: $(cat "$TEST_DIR/writer.log")"
}

wait_some_failed() {
	local f
	wait_until 60 eval 'state_is a.img failed || state_is b.img failed' ||
		fail "no file failed; status: $(status_json)"
	for f in $FAULT_FILES; do
		say "  $f: $(file_state "$f"): $(file_field "$f" error)"
	done
}

retry_elsewhere() {
	mkdir "$TEST_DIR/dst2"
	ctl migrate --to "$TEST_DIR/dst2" >/dev/null
	ctl wait --timeout 120 >/dev/null
	ctl cutover --timeout 60 >/dev/null
	writer_flushes
	writer_stop 0
	check_final "$TEST_MNT" $FAULT_FILES
	assert_eq "$TEST_DIR/dst2" "$(status_field source)" "served after the cutover"
	relocfs_umount
	check_final "$TEST_DIR/dst2" $FAULT_FILES
}

# writer_stop_after_eio: stop the writer after its storage failed under it;
# it may have kept working or stopped on EIO, but it must never have read a
# wrong byte (a read cut short by EIO counts as a mismatch in the writer;
# wrong bytes are a mismatch before the end of what was read)
writer_stop_after_eio() {
	local rc=0 off got want d
	touch "$WRITER_STOP"
	wait "$WRITER_PID" || rc=$?
	WRITER_PID=
	say "  $(tail -n 1 "$TEST_DIR/writer.log")"
	while read -r off got want d; do
		[ "$d" -ge $((off + got)) ] ||
			fail "the mount served wrong data at offset $d: $(cat "$TEST_DIR/writer.log")"
		say "  a read at $off was cut short after $got of $want bytes (EIO), no wrong byte"
	done < <(sed -n 's/.*read mismatch: .* at \([0-9]*\): \([0-9]*\) of \([0-9]*\) bytes read, first difference at offset \([0-9]*\).*/\1 \2 \3 \4/p' \
		"$TEST_DIR/writer.log")
	grep -q 'read mismatch' "$TEST_DIR/writer.log" && [ "$rc" = 4 ] && rc=3
	case $rc in
	0) say "  the writer kept working" ;;
	3) say "  the writer stopped on: $(grep -v '^relocwriter: [0-9]* ops' "$TEST_DIR/writer.log" | head -n 1)" ;;
	*) fail "relocwriter exited with status $rc: $(cat "$TEST_DIR/writer.log")" ;;
	esac
}

# RELOC_KEEP=DIR: on a failure, keep copies of SRC, DST, the model and the
# logs in DIR for a post-mortem (the test directory is removed)
if [ -n "${RELOC_KEEP:-}" ]; then
	eval "orig_$(declare -f show_daemon_log)"
	show_daemon_log() {
		orig_show_daemon_log
		mkdir -p "$RELOC_KEEP"
		cp -a "$TEST_SRC" "$TEST_DST" "$MODEL" "$TEST_DIR/relocfs.log" "$TEST_DIR/writer.log" \
			"$RELOC_KEEP/" 2>/dev/null
		say "  kept SRC, DST, the model and the logs in '$RELOC_KEEP'"
	}
fi
