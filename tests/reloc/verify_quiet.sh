#!/bin/bash
test_description='verify raises no false alarm while a writer runs (verify_truncated.sh: after a truncate)'
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib_reloc.sh"

step 'a writer (sizes fixed) on a 64 MiB and a 4 MiB image'
relocfs_mount
writer_start --seed 909 --direct --no-truncate --flush-every 32 --delay-us 200 \
	--size 64M --file "$TEST_MNT/disk.img" --size 4M --file "$TEST_MNT/small.img"

step 'migrate the tree and wait'
ctl migrate --to "$TEST_DST" >/dev/null
ctl wait --timeout 120 >/dev/null

step 'verify while the writer runs finds no difference (forty times)'
for i in $(seq 1 40); do
	out=$(untrapped ctl verify 2>&1) || fail "verify $i of 40 under writes reported a difference: $out"
done
writer_stop 0

step 'cut over: everything is exact'
ctl cutover --timeout 60 >/dev/null
check_final "$TEST_MNT" disk.img small.img
check_final "$TEST_DST" disk.img small.img
relocfs_umount
test_done
