#!/bin/bash
test_description='verify compares DEST with the live view: equal after wait, exit 1 naming the file and offset after one byte of DEST is changed behind the daemon, equal again once it is put back (verify_quiet.sh: no false alarms)'
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib_reloc.sh"

step 'an untouched 1 MiB image and a writer on two more'
head -c 1048576 /dev/urandom >"$TEST_SRC/static.img"
relocfs_mount
# no truncates here: verify_quiet.sh covers them
writer_start --seed 808 --direct --no-truncate --flush-every 32 --delay-us 2000 \
	--size 64M --file "$TEST_MNT/disk.img" --size 4M --file "$TEST_MNT/small.img"

step 'migrate the tree and wait; stop the writer'
ctl migrate --to "$TEST_DST" >/dev/null
ctl wait --timeout 120 >/dev/null
writer_stop 0

step 'verify finds DEST equal to the live view'
ctl verify >/dev/null || fail "verify reported a difference before anything was changed: $(ctl verify 2>&1)"

step 'change one byte of DEST/static.img behind the daemon: verify exits 1 naming the file and offset'
OFF=123457
orig=$(dd if="$TEST_DST/static.img" bs=1 skip=$OFF count=1 status=none | od -An -tx1 | tr -d ' ')
printf "\\x$(printf %02x $(( (0x$orig + 1) % 256 )))" |
	dd of="$TEST_DST/static.img" bs=1 seek=$OFF conv=notrunc,fsync status=none
expect_fail ctl verify
say "  $ERR_OUT"
assert_eq 1 "$(printf '%s\n' "$ERR_OUT" | wc -l)" "lines on stderr"
case $ERR_OUT in *static.img*$OFF*) ;; *) fail "verify does not name static.img and offset $OFF: $ERR_OUT" ;; esac
rc=0
ctl verify 2>/dev/null || rc=$?
assert_eq 1 "$rc" "verify's exit status"

step 'put the byte back: verify is happy again'
printf "\\x$orig" | dd of="$TEST_DST/static.img" bs=1 seek=$OFF conv=notrunc,fsync status=none
ctl verify >/dev/null || fail "verify still reports a difference: $(ctl verify 2>&1)"

step 'cut over: the live view and DEST hold exactly what was written'
ctl cutover --timeout 60 >/dev/null
check_final "$TEST_MNT" disk.img small.img
check_final "$TEST_DST" disk.img small.img
cmp "$TEST_SRC/static.img" "$TEST_DST/static.img" || fail "DEST/static.img differs from the source"
relocfs_umount
test_done
