#!/bin/bash
test_description='migrate a whole tree that holds hard links: each stays one file with several names, in DEST and through the mount, before and after the cutover; a file with a name outside the tree is refused first, with one line, leaving DEST empty'
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib_reloc.sh"

step 'a tree with a file of two names (a/f, b/g) and one of three (c, d/c2, d/c3)'
mkdir -p "$TEST_SRC/a" "$TEST_SRC/b" "$TEST_SRC/d"
head -c 300000 /dev/urandom >"$TEST_SRC/a/f"
head -c 70000 /dev/urandom >"$TEST_SRC/c"
ln "$TEST_SRC/a/f" "$TEST_SRC/b/g"
ln "$TEST_SRC/c" "$TEST_SRC/d/c2"
ln "$TEST_SRC/c" "$TEST_SRC/d/c3"
echo plain >"$TEST_SRC/d/plain"
relocfs_mount

# same_file DIR NAME...: the names are one inode with as many links as names
same_file() {
	local dir=$1 first=$2 n
	shift
	for n in "$@"; do
		assert_eq "$(stat -c '%i' "$dir/$first") $#" "$(stat -c '%i %h' "$dir/$n")" \
			"inode and link count of '$n' in '$dir' (same as '$first')"
	done
}

step 'a file with a name outside the tree: the migration is refused, DEST stays empty'
ln "$TEST_SRC/d/plain" "$TEST_DIR/outside"
expect_fail ctl migrate --to "$TEST_DST"
assert_eq "relocctl: 'd/plain' has 2 names and 1 of them in the tree: the others would keep the old copy; remove them first" \
	"$ERR_OUT" "the refusal"
assert_eq "" "$(ls -A "$TEST_DST")" "DEST after the refusal"
rm "$TEST_DIR/outside"

step 'migrate the whole tree'
ctl migrate --to "$TEST_DST" >/dev/null

step 'while it migrates, a write through one name is read through the others'
printf 'written as a/f' | dd of="$TEST_MNT/a/f" bs=1 seek=1000 conv=notrunc status=none
assert_eq "written as a/f" "$(dd if="$TEST_MNT/b/g" bs=1 skip=1000 count=14 status=none)" "b/g during the migration"
printf 'written as d/c3' | dd of="$TEST_MNT/d/c3" bs=1 seek=0 conv=notrunc status=none
assert_eq "written as d/c3" "$(head -c 15 "$TEST_MNT/c")" "c during the migration"
same_file "$TEST_MNT" a/f b/g
same_file "$TEST_MNT" c d/c2 d/c3

step 'wait and cut over'
ctl wait --timeout 60 >/dev/null
ctl cutover --timeout 60 >/dev/null

step 'in DEST and through the mount each file is still one inode with all its names'
for d in "$TEST_DST" "$TEST_MNT"; do
	same_file "$d" a/f b/g
	same_file "$d" c d/c2 d/c3
done
assert_eq "written as a/f" "$(dd if="$TEST_DST/b/g" bs=1 skip=1000 count=14 status=none)" "DEST/b/g"
assert_eq "written as d/c3" "$(head -c 15 "$TEST_DST/d/c2")" "DEST/d/c2"

step 'after the cutover a write through one name reaches every name, in DEST'
echo "after" >"$TEST_MNT/b/g"
assert_eq "after" "$(cat "$TEST_DST/a/f")" "DEST/a/f after writing b/g"
assert_eq "after" "$(cat "$TEST_MNT/a/f")" "a/f through the mount after writing b/g"
relocfs_umount
test_done
