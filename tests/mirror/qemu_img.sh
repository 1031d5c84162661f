#!/bin/bash
test_description='qemu-img round trips on the mount: create raw and qcow2, write patterns with qemu-io (cache=writeback and cache=none), check, convert, compare'
. "$(dirname "$0")/../lib.sh"
require_cmd qemu-img qemu-io
relocfs_mount
cd "$TEST_MNT"

qio() {	# qio ARGS...: qemu-io that must succeed
	qemu-io "$@" >"$TEST_DIR/qio.out" 2>&1 || fail "qemu-io $*: $(cat "$TEST_DIR/qio.out")"
	! grep -q 'Pattern verification failed\|error' "$TEST_DIR/qio.out" || fail "qemu-io $*: $(cat "$TEST_DIR/qio.out")"
}
write_patterns() {	# write_patterns FORMAT IMAGE CACHE
	qio -f "$1" -t "$3" -c 'write -P 0x5a 0 1M' -c 'write -P 0xa5 4M 512k' -c 'write -P 0x33 7M 4k' \
		-c 'write -z 4M 64k' -c 'write -P 0x77 63M 1M' "$2"
}
read_patterns() {	# read_patterns FORMAT IMAGE CACHE
	qio -f "$1" -t "$3" -c 'read -P 0x5a 0 1M' -c 'read -P 0 1M 3M' -c 'read -P 0 4M 64k' \
		-c 'read -P 0xa5 4160k 448k' -c 'read -P 0x33 7M 4k' -c 'read -P 0x77 63M 1M' "$2"
}

for cache in writeback none; do
	step "create raw and qcow2 images of 64 MiB (qemu-io cache=$cache)"
	rm -f disk.raw disk.qcow2
	qemu-img create -q -f raw disk.raw 64M
	qemu-img create -q -f qcow2 disk.qcow2 64M
	assert_eq $((64 << 20)) "$(stat -c %s "$TEST_SRC/disk.raw")" "backing size of disk.raw"

	step "write patterns with qemu-io -t $cache and read them back"
	write_patterns raw disk.raw $cache
	write_patterns qcow2 disk.qcow2 $cache
	read_patterns raw disk.raw $cache
	read_patterns qcow2 disk.qcow2 $cache

	step "the backing raw file holds the patterns (read on the backing directory, cache=$cache)"
	(cd "$TEST_SRC" && read_patterns raw disk.raw writeback)

	step "qemu-img check finds no errors in the qcow2 image (cache=$cache)"
	qemu-img check -q disk.qcow2 || fail "qemu-img check disk.qcow2 failed"

	step "qemu-img compare: raw and qcow2 hold the same guest data (cache=$cache)"
	qemu-img compare -q -f raw -F qcow2 disk.raw disk.qcow2 || fail "raw and qcow2 images differ"
done

step 'convert qcow2 -> raw and raw -> qcow2 on the mount, with -t none -T none'
qemu-img convert -t none -T none -f qcow2 -O raw disk.qcow2 conv.raw
qemu-img convert -t none -T none -f raw -O qcow2 disk.raw conv.qcow2
qemu-img check -q conv.qcow2 || fail "qemu-img check conv.qcow2 failed"
qemu-img compare -q -f raw -F raw disk.raw conv.raw || fail "conv.raw differs from disk.raw"
qemu-img compare -q -f raw -F qcow2 disk.raw conv.qcow2 || fail "conv.qcow2 differs from disk.raw"
cmp "$TEST_SRC/disk.raw" "$TEST_SRC/conv.raw" || fail "backing conv.raw differs from backing disk.raw"

step 'the converted raw image is sparse on the backing directory (qemu-img skips zeroes)'
b=$(stat -c %b "$TEST_SRC/conv.raw")
[ "$b" -lt $((16 << 11)) ] || fail "conv.raw uses $b blocks for about 3 MiB of data"

step 'qemu-img map through the mount agrees with the map of the backing file'
assert_eq "$(qemu-img map -f raw --output=json "$TEST_SRC/conv.raw" | sed 's/"offset": [0-9]*}/}/')" \
	"$(qemu-img map -f raw --output=json conv.raw | sed 's/"offset": [0-9]*}/}/')" "qemu-img map of conv.raw"

step 'convert out of the mount into a plain directory and back gives identical images'
qemu-img convert -f qcow2 -O raw disk.qcow2 "$TEST_REF/out.raw"
qemu-img convert -f raw -O qcow2 "$TEST_REF/out.raw" back.qcow2
qemu-img compare -q -f raw -F qcow2 "$TEST_REF/out.raw" back.qcow2 || fail "round trip differs"

step 'qemu-img resize and a write at the new end'
qemu-img resize -q -f qcow2 disk.qcow2 128M
qio -f qcow2 -c 'write -P 0x99 127M 1M' -c 'read -P 0x99 127M 1M' -c 'read -P 0x5a 0 1M' disk.qcow2
qemu-img resize -q -f raw disk.raw 128M
assert_eq $((128 << 20)) "$(stat -c %s "$TEST_SRC/disk.raw")" "backing size after resize"
qemu-img check -q disk.qcow2 || fail "qemu-img check after resize failed"

step 'a qcow2 overlay on a raw backing image, both on the mount'
qemu-img create -q -f qcow2 -b disk.raw -F raw overlay.qcow2
qio -f qcow2 -c 'write -P 0x44 2M 1M' -c 'read -P 0x5a 0 1M' -c 'read -P 0x44 2M 1M' overlay.qcow2
qemu-img commit -q overlay.qcow2
qio -f raw -c 'read -P 0x44 2M 1M' disk.raw
(cd "$TEST_SRC" && qio -f raw -c 'read -P 0x44 2M 1M' disk.raw)

cd /
relocfs_umount
test_done
