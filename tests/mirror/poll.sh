#!/bin/bash
test_description='-o poll: over io_uring the ring threads look for work instead of sleeping while requests come (far fewer sleeps per request than without), stop looking when they stop (an idle mount takes no CPU), and the data read and written is right'
. "$(dirname "$0")/../lib.sh"
require_root

[ "$(cat /sys/module/fuse/parameters/enable_uring 2>/dev/null)" = Y ] ||
	skip "FUSE over io_uring is not on here: -o poll is for it"
[ "${RELOCFS_TRANSPORT:-}" != dev ] || skip "this run is over /dev/fuse: -o poll is for io_uring"

# ring_stat: "sleeps cpu_ticks" of the worker's ring threads (uring-q*), summed
ring_stat() {
	local pid t sleeps=0 ticks=0
	pid=$("$RELOCCTL" -m "$TEST_MNT" status --json | jq -r .worker_pid)
	for t in /proc/"$pid"/task/*; do
		case $(cat "$t/comm" 2>/dev/null) in uring-q*) ;; *) continue ;; esac
		sleeps=$((sleeps + $(awk '/^voluntary_ctxt_switches/ {print $2}' "$t/status")))
		ticks=$((ticks + $(awk '{print $14 + $15}' "$t/stat")))
	done
	echo "$sleeps $ticks"
}

# reads N: N 4 KiB O_DIRECT reads through the mount, one at a time; prints
# the ring threads' sleeps per read
reads() {
	local a b
	a=$(ring_stat)
	dd if="$TEST_MNT/img" of=/dev/null bs=4k count="$1" iflag=direct status=none ||
		fail "direct reads through the mount failed"
	b=$(ring_stat)
	echo "$a $b" | awk -v n="$1" '{ printf "%.3f\n", ($3 - $1) / n }'
}

dd if=/dev/urandom of="$TEST_SRC/img" bs=1M count=16 status=none

step 'without -o poll: a ring thread sleeps for about every request'
# relocfs_mount checks the transport and polling it asks for (status --json)
RELOCFS_TRANSPORT=uring
relocfs_mount
plain=$(reads 4000)
say "    sleeps per read: $plain"
relocfs_umount

step 'with -o poll=1000: it does not sleep between requests that come'
RELOCFS_TRANSPORT=uring-poll RELOCFS_POLL_US=1000
relocfs_mount
grep -q 'polling 1000 us' "$TEST_DIR/relocfs.log" || fail "the log does not say that the mount polls"
polled=$(reads 4000)
say "    sleeps per read: $polled"
awk -v p="$polled" -v q="$plain" 'BEGIN { exit !(p * 4 < q) }' ||
	fail "with polling the ring threads slept $polled times a read, without $plain"

step 'an idle polling mount takes no CPU'
sleep 0.5
a=$(ring_stat)
sleep 2
b=$(ring_stat)
idle=$(echo "$a $b" | awk '{ print $4 - $2 }')
say "    ring threads' CPU in 2 s idle: $idle ticks of $(getconf CLK_TCK) a second"
[ "$idle" -le 10 ] || fail "the idle ring threads took $idle ticks of CPU in 2 s"

step 'what is read and written through the polling mount is right'
cmp "$TEST_SRC/img" "$TEST_MNT/img" || fail "a read through the mount differs from the file"
dd if=/dev/urandom of="$TEST_DIR/new" bs=4k count=2048 status=none
dd if="$TEST_DIR/new" of="$TEST_MNT/img" bs=4k oflag=direct conv=notrunc,fsync status=none ||
	fail "direct writes through the mount failed"
cmp "$TEST_DIR/new" "$TEST_SRC/img" -n $((8 << 20)) || fail "the backing file differs from what was written"
relocfs_umount
test_done
