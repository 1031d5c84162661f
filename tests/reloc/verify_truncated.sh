#!/bin/bash
test_description='verify raises no false alarm after a migrating file was truncated below the size its migration started with and extended again; the cutover gives the right content'
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib_reloc.sh"

step 'a 1 MiB image, migrated; wait'
head -c 1048576 /dev/urandom >"$TEST_SRC/trunc.img"
relocfs_mount
ctl migrate --to "$TEST_DST" >/dev/null
ctl wait --timeout 60 >/dev/null
ctl verify >/dev/null || fail "verify reported a difference before anything changed: $(ctl verify 2>&1)"

step 'truncate it to 512 KiB and back to 1 MiB through the mount: the live view has zeros in the second half'
truncate -s 512K "$TEST_MNT/trunc.img"
truncate -s 1M "$TEST_MNT/trunc.img"
{ head -c 524288 "$TEST_SRC/trunc.img"; head -c 524288 /dev/zero; } >"$TEST_DIR/trunc.expected"
cmp "$TEST_DIR/trunc.expected" "$TEST_MNT/trunc.img" || fail "the live view of trunc.img is wrong"

step 'verify finds no difference'
out=$(untrapped ctl verify 2>&1) || fail "verify reported a difference after the truncate: $out"

step 'cut over: the live view and DEST hold the truncated content'
ctl cutover --timeout 60 >/dev/null
cmp "$TEST_DIR/trunc.expected" "$TEST_MNT/trunc.img" || fail "trunc.img through the mount is wrong"
cmp "$TEST_DIR/trunc.expected" "$TEST_DST/trunc.img" || fail "DEST/trunc.img is wrong"
relocfs_umount
test_done
