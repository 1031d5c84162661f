#!/bin/bash
test_description='appends flushed while migrate is under way, the daemon killed at crash point migrate-recorded (the job is recorded, the base not yet frozen): after the restart the file keeps every flushed append'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
require_daemon
RUNS=${RELOC_APPEND_RUNS:-4}

# appender FILE LOG: append 4 KiB blocks, each flushed (fsync) before its new
# size is written to LOG; stops at the first error.  One process (perl-base),
# so that appends are frequent enough to land between the record and the hold
appender() {
	perl -e '
		use IO::Handle;
		open(my $f, "+<", $ARGV[0]) or exit 1;
		open(my $log, ">>", $ARGV[1]) or exit 1;
		$log->autoflush(1);
		my $size = -s $f;
		while (1) {
			sysseek($f, $size, 0) or last;
			(syswrite($f, "\xab" x 4096) // -1) == 4096 or last;
			$f->sync or last;
			$size += 4096;
			print $log "$size\n";
		}' "$1" "$2" || true
}

for i in $(seq 1 "$RUNS"); do
	step "[$i] appends flushed through the mount; migrate; the daemon dies at migrate-recorded"
	rm -rf "$TEST_SRC" "$TEST_DST"
	mkdir -p "$TEST_SRC" "$TEST_DST"
	head -c 1M /dev/urandom >"$TEST_SRC/disk.img"
	: >"$TEST_DIR/acked"
	RELOCFS_CRASHPOINT=migrate-recorded relocfs_mount
	appender "$TEST_MNT/disk.img" "$TEST_DIR/acked" &
	app=$!
	wait_until 20 eval '[ -s "$TEST_DIR/acked" ]' || fail "the appender did not start"
	ctl migrate --to "$TEST_DST" >/dev/null 2>&1 && fail "migrate succeeded although the daemon was to die in it"
	wait_until 20 eval '! kill -0 $RELOCFS_PID 2>/dev/null' || fail "the daemon did not die"
	wait "$RELOCFS_PID" 2>/dev/null || true
	RELOCFS_PID=
	fusermount3 -uz "$TEST_MNT"
	RELOCFS_MOUNTED=
	wait "$app" || true
	acked=$(tail -n 1 "$TEST_DIR/acked")

	step "[$i] restarted with the same arguments: the size is at least the last flushed one ($acked)"
	relocfs_mount
	got=$(stat -c %s "$TEST_MNT/disk.img")
	say "  last flushed size $acked, size after the restart $got, size of the source $(stat -c %s "$TEST_SRC/disk.img")"
	[ "$got" -ge "$acked" ] || fail "flushed appends are gone after the restart: size $got, flushed $acked"
	ctl abort >/dev/null
	relocfs_umount
done
test_done
