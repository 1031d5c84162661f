# tests/reloc/lib_reloc.sh: sourced by the relocation tests after tests/lib.sh.
#
# Adds to lib.sh:
#   $TEST_DST     an empty destination directory ($TEST_DIR/dst)
#   $MODEL        the writer's model directory ($TEST_DIR/model)
#   $WRITER       build/tests/relocwriter
#   ctl ARGS...   relocctl -m $TEST_MNT ARGS...
#   writer_start ARGS...  start relocwriter in the background (seed, files and
#                 sizes in ARGS; model dir and stop file are added) and wait
#                 until it has created or scanned its files
#   writer_stop [RC]      ask it to stop; its exit status must be RC (default 0)
#   check_final FILE...   each FILE (any path) equals the writer's .final model
#   file_state PATH, file_field PATH FIELD, status_field FIELD: from status --json
#   wait_state SECONDS PATH STATE...: poll until PATH is in one of STATEs
#   one_of WORD CHOICE...  WORD is one of the CHOICEs
#   kill_daemon   kill -9 the daemon and unmount its dead mount
#   loop_fs SIZE DIR      an ext4 of SIZE on a loop device, mounted at DIR
#
# Every exit path goes through reloc_cleanup and then lib.sh's cleanup: stop
# the writer, unmount every FUSE mount under $TEST_DIR, end the daemons this
# test started (they keep files open on the loop filesystem), unmount the loop
# filesystems and detach their devices.

TEST_DST=$TEST_DIR/dst
MODEL=$TEST_DIR/model
WRITER=$TOOLS/relocwriter
WRITER_PID=
WRITER_STOP=$TEST_DIR/writer.stop
LOOP_DEVS=()
LOOP_MNTS=()
mkdir -p "$TEST_DST" "$MODEL"

require_tool relocwriter
require_cmd jq

ctl() {
	"$RELOCCTL" -m "$TEST_MNT" "$@"
}

# pids of processes whose command line names this test's directory, and
# whose name is relocfs
reloc_daemons() {
	local p
	for p in /proc/[0-9]*; do
		[ "${p#/proc/}" != $$ ] || continue
		[ "$(cat "$p/comm" 2>/dev/null)" = relocfs ] || continue
		tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$TEST_DIR/" || continue
		echo "${p#/proc/}"
	done
}

reloc_cleanup() {
	local rc=$? m p i
	trap - ERR
	trap '' INT TERM	# a second signal must not cut the clean-up short
	set +e
	if [ -n "$WRITER_PID" ]; then
		kill "$WRITER_PID" 2>/dev/null
		wait_until 10 eval '! kill -0 $WRITER_PID 2>/dev/null'
		kill -9 "$WRITER_PID" 2>/dev/null
		WRITER_PID=
	fi
	if [ ${#LOOP_MNTS[@]} -gt 0 ]; then
		# the daemons hold files on the loop filesystems: end them first
		for m in $(awk -v d="$TEST_DIR/" 'index($5, d) == 1 && $0 ~ / - fuse/ { print $5 }' \
			/proc/self/mountinfo | sort -r); do
			fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null
		done
		for p in $(reloc_daemons); do
			kill "$p" 2>/dev/null
		done
		for i in $(seq 1 50); do
			[ -n "$(reloc_daemons)" ] || break
			sleep 0.1
		done
		for p in $(reloc_daemons); do
			kill -9 "$p" 2>/dev/null
		done
		for m in "${LOOP_MNTS[@]}"; do
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
		done
		for m in "${LOOP_DEVS[@]}"; do
			losetup -d "$m" 2>/dev/null
		done
	fi
	reloc_set_rc "$rc"
	cleanup
}
reloc_set_rc() { return "$1"; }
trap reloc_cleanup EXIT

# writer_start ARGS...: ARGS name the seed, sizes and files (see relocwriter)
writer_start() {
	rm -f "$WRITER_STOP" "$MODEL/ready"
	"$WRITER" --model-dir "$MODEL" --until-file "$WRITER_STOP" "$@" \
		>"$TEST_DIR/writer.log" 2>&1 &
	WRITER_PID=$!
	wait_until 120 writer_ready_or_died || fail "relocwriter did not get ready within 120 s"
	if [ ! -e "$MODEL/ready" ]; then
		local rc=0
		wait "$WRITER_PID" || rc=$?
		WRITER_PID=
		fail "relocwriter $* exited with status $rc before it was ready: $(cat "$TEST_DIR/writer.log")"
	fi
}

writer_ready_or_died() {
	[ -e "$MODEL/ready" ] || ! kill -0 "$WRITER_PID" 2>/dev/null
}

# writer_running: the writer is still at work (it stops by itself on an error)
writer_running() {
	kill -0 "$WRITER_PID" 2>/dev/null
}

# writer_stop [RC]: stop the writer; it must exit with RC (default 0)
writer_stop() {
	local want=${1:-0} rc=0
	touch "$WRITER_STOP"
	wait "$WRITER_PID" || rc=$?
	WRITER_PID=
	say "  $(tail -n 1 "$TEST_DIR/writer.log")"
	[ "$rc" = "$want" ] ||
		fail "relocwriter exited with status $rc, expected $want: $(cat "$TEST_DIR/writer.log")"
}

# check_model MODE PATH MODEL: MODE is exact or acked
check_model() {
	local out rc=0 extra=
	[ "$1" = acked ] && extra=--check-acked
	out=$("$WRITER" --check "$2" --model "$3" $extra 2>&1) || rc=$?
	[ $rc = 0 ] || fail "content of '$2' is not what the writer wrote: $out"
}

# check_final DIR NAME...: DIR/NAME equals the writer's final model of NAME
check_final() {
	local dir=$1 n
	shift
	for n in "$@"; do
		check_model exact "$dir/$n" "$MODEL/$n.final"
	done
}

# check_acked DIR NAME...: every block of DIR/NAME holds what the writer had
# flushed, or something it wrote later
check_acked() {
	local dir=$1 n
	shift
	for n in "$@"; do
		check_model acked "$dir/$n" "$MODEL/$n.acked"
	done
}

status_json() {
	ctl status --json
}

# status_field FIELD: a top-level field of status --json
status_field() {
	status_json | jq -r ".$1"
}

# file_field PATH FIELD: a field of PATH's entry in status --json
file_field() {
	status_json | jq -r --arg p "$1" ".files[] | select(.path == \$p) | .$2"
}

file_state() {
	file_field "$1" state
}

# one_of WORD CHOICE...: WORD is one of the CHOICEs
one_of() {
	local w=$1 c
	shift
	for c in "$@"; do
		[ "$w" = "$c" ] && return 0
	done
	return 1
}

# state_is PATH STATE...: PATH is in one of the STATEs
state_is() {
	local p=$1 cur
	shift
	cur=$(file_state "$p") || return 1
	one_of "$cur" "$@"
}

# wait_state SECONDS PATH STATE...: a hang guard, not a timing assertion
wait_state() {
	local limit=$1 p=$2
	shift 2
	wait_until "$limit" state_is "$p" "$@" ||
		fail "'$p' did not reach state $* within $limit s; status: $(status_json)"
}

# kill_daemon: kill -9 the daemon started by relocfs_mount, unmount the dead mount
kill_daemon() {
	kill -9 "$RELOCFS_PID"
	wait "$RELOCFS_PID" 2>/dev/null || true
	RELOCFS_PID=
	fusermount3 -u "$TEST_MNT" 2>/dev/null || fusermount3 -uz "$TEST_MNT"
	RELOCFS_MOUNTED=
	! is_mounted "$TEST_MNT" || fail "'$TEST_MNT' is still mounted after the daemon was killed"
}

# allocated PATH: bytes allocated to PATH
allocated() {
	echo $(($(stat -c '%b * %B' "$1")))
}

# loop_fs SIZE DIR: mkfs.ext4 on a loop file of SIZE, mounted at DIR
loop_fs() {
	local size=$1 dir=$2 img dev
	require_root
	require_cmd losetup mkfs.ext4
	img=$TEST_DIR/$(basename "$dir").ext4
	truncate -s "$size" "$img"
	dev=$(losetup -f --show "$img" 2>/dev/null) || skip "no loop device available"
	LOOP_DEVS+=("$dev")
	mkfs.ext4 -q -F "$dev" >/dev/null 2>&1 || fail "mkfs.ext4 on '$dev' failed"
	mkdir -p "$dir"
	mount "$dev" "$dir" || skip "cannot mount ext4 from a loop device"
	LOOP_MNTS+=("$dir")
	rmdir "$dir/lost+found" 2>/dev/null || true
}

# work in the test's directory: a relative path that slips through (e.g. a
# destination made relative by mistake) lands here and is removed with it
cd "$TEST_DIR"
