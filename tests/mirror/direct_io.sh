#!/bin/bash
test_description='O_DIRECT through the mount: fio verify jobs with libaio and psync, dd oflag=direct, all landing on the backing file'
. "$(dirname "$0")/../lib.sh"
require_cmd fio
relocfs_mount

run_fio() {
	local name=$1
	shift
	if ! (cd "$TEST_DIR" && fio --verify_state_save=0 --name="$name" --filename="$TEST_MNT/fio-$name" --output="$TEST_DIR/fio-$name.out" "$@"); then
		sed 's/^/    | /' "$TEST_DIR/fio-$name.out"
		fail "fio $name failed (output above)"
	fi
	grep -q 'err= 0' "$TEST_DIR/fio-$name.out" || fail "fio $name reported errors: $(grep 'err=' "$TEST_DIR/fio-$name.out")"
}

step 'fio libaio iodepth 16, 4 KiB random writes with crc32c verify, O_DIRECT'
run_fio aio4k --ioengine=libaio --direct=1 --iodepth=16 --rw=randwrite --bs=4k --size=32M \
	--verify=crc32c --verify_fatal=1 --do_verify=1 --randseed=1

step 'fio libaio, mixed 4 KiB-1 MiB blocks, sequential write then verify'
run_fio aiomix --ioengine=libaio --direct=1 --iodepth=8 --rw=write --bsrange=4k-1m --size=48M \
	--verify=md5 --verify_fatal=1 --randseed=2

step 'fio psync O_DIRECT 64 KiB random read/write with verify'
run_fio psync --ioengine=psync --direct=1 --rw=randwrite --bs=64k --size=32M \
	--verify=crc32c --verify_fatal=1 --randseed=3

step 'fio with two jobs writing one file O_DIRECT at once, each its own half, verified'
run_fio twojobs --ioengine=libaio --direct=1 --iodepth=4 --rw=randwrite --bs=16k --size=16M \
	--numjobs=2 --offset_increment=16M --verify=crc32c --verify_fatal=1 --randseed=4

step 'the backing file holds what fio wrote: read it back O_DIRECT through the mount and buffered on the backing file'
cmp "$TEST_SRC/fio-aiomix" "$TEST_MNT/fio-aiomix" || fail "fio-aiomix differs between mount and backing file"

step 'dd oflag=direct bs=1M writes, iflag=direct reads back the same bytes'
head -c $((16 << 20)) /dev/urandom >"$TEST_DIR/data"
dd if="$TEST_DIR/data" of="$TEST_MNT/dd" bs=1M oflag=direct status=none
cmp "$TEST_DIR/data" "$TEST_SRC/dd" || fail "backing file differs after dd oflag=direct"
dd if="$TEST_MNT/dd" bs=1M iflag=direct status=none | cmp - "$TEST_DIR/data" || fail "dd iflag=direct read differs"

step 'a 4 KiB O_DIRECT write into the middle of a buffered-written file'
dd if=/dev/zero of="$TEST_MNT/dd" bs=4k count=1 seek=100 oflag=direct conv=notrunc status=none
dd if=/dev/zero of="$TEST_DIR/data" bs=4k count=1 seek=100 conv=notrunc status=none
cmp "$TEST_DIR/data" "$TEST_MNT/dd" || fail "read through the mount differs after an O_DIRECT overwrite"
cmp "$TEST_DIR/data" "$TEST_SRC/dd" || fail "backing file differs after an O_DIRECT overwrite"

relocfs_umount
test_done
