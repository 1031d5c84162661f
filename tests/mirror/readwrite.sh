#!/bin/bash
test_description='create, open, read and write through the mount, checked against the backing file and a plain directory'
. "$(dirname "$0")/../lib.sh"
require_tool fsop
FSOP=$TOOLS/fsop

relocfs_mount

step 'a file written through the mount holds the same bytes on the backing directory'
for size in 0 1 511 4095 4096 4097 65537 1048575 1048577 3000000; do
	head -c $size /dev/urandom >"$TEST_DIR/data.$size"
	cp "$TEST_DIR/data.$size" "$TEST_MNT/f.$size"
	cmp "$TEST_DIR/data.$size" "$TEST_SRC/f.$size" || fail "backing copy of a $size-byte file differs"
	cmp "$TEST_DIR/data.$size" "$TEST_MNT/f.$size" || fail "read-back of a $size-byte file differs"
	assert_eq "$size" "$(stat -c %s "$TEST_MNT/f.$size")" "size of f.$size through the mount"
done

step 'a file written on the backing directory reads the same through the mount'
head -c 200000 /dev/urandom >"$TEST_SRC/from-backing"
cmp "$TEST_SRC/from-backing" "$TEST_MNT/from-backing" || fail "read through the mount differs"

step 'appending (O_APPEND) adds at the end, through the mount as in a plain directory'
in_both sh -c 'echo one >app; echo two >>app; echo three >>app; cat app'
cmp "$TEST_REF/app" "$TEST_SRC/app" || fail "backing file after appends differs"

step 'overwriting in the middle (dd conv=notrunc) keeps the rest'
in_both sh -c 'head -c 10000 /dev/zero | tr "\0" a >mid; printf XYZ | dd of=mid bs=1 seek=4097 conv=notrunc status=none; od -An -c -j 4094 -N 8 mid; stat -c %s mid'
cmp "$TEST_REF/mid" "$TEST_SRC/mid" || fail "backing file after overwrite differs"

step 'reads at offsets (dd skip) return the right bytes'
for off in 0 1 4095 4096 65535 1048576 2999999; do
	want=$(dd if="$TEST_DIR/data.3000000" bs=1 skip=$off count=16 status=none | od -An -tx1)
	got=$(dd if="$TEST_MNT/f.3000000" bs=1 skip=$off count=16 status=none | od -An -tx1)
	assert_eq "$want" "$got" "16 bytes at offset $off"
done

step 'a write beyond EOF leaves a zero-filled gap'
in_both sh -c 'echo start >gap; '"$FSOP"' pwrite gap 100000 end; stat -c %s gap; od -An -tx1 -j 4000 -N 16 gap'
cmp "$TEST_REF/gap" "$TEST_MNT/gap" || fail "file with a gap differs from the plain-directory one"

step 'open flags fail and succeed as in a plain directory'
in_both touch exists
in_both mkdir adir
in_both "$FSOP" open exists creat,excl,wronly
in_both "$FSOP" open new creat,excl,wronly
in_both "$FSOP" open missing rdonly
in_both "$FSOP" open adir wronly
in_both "$FSOP" open exists directory,rdonly
in_both "$FSOP" open adir/x creat,wronly
in_both "$FSOP" open exists/x creat,wronly

step 'O_TRUNC empties the file, on the backing directory too'
echo something >"$TEST_MNT/trunc"
"$FSOP" open "$TEST_MNT/trunc" wronly,trunc >/dev/null
assert_eq 0 "$(stat -c %s "$TEST_SRC/trunc")" "backing size after O_TRUNC"
assert_eq 0 "$(stat -c %s "$TEST_MNT/trunc")" "size through the mount after O_TRUNC"

step 'a new file is created with the mode asked for, minus the umask'
in_both sh -c 'umask 027; touch m1; umask 0; '"$FSOP"' open m2 creat,wronly; stat -c "%a %U" m1 m2'
assert_eq "640 666" "$(stat -c %a "$TEST_SRC/m1" "$TEST_SRC/m2" | tr '\n' ' ' | sed 's/ $//')" "backing modes"

step 'two open descriptors see each other'"'"'s writes'
in_both sh -c 'exec 3<>shared 4<>shared; printf abc >&3; cat <&4; printf def >&4; cat shared'

step 'the whole tree matches the backing directory'
compare_trees "$TEST_SRC" "$TEST_MNT"

relocfs_umount
test_done
