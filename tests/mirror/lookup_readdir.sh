#!/bin/bash
test_description='lookup, getattr and readdir: ls -la, stat and find through the mount show what the backing directory holds'
. "$(dirname "$0")/../lib.sh"

# a tree with every kind of entry, made on the backing directory
cd "$TEST_SRC"
mkdir -p a/b/c 'with space' 'ünïcödé' empty
echo hello >a/file
head -c 5000 /dev/urandom >a/b/rand
: >a/b/c/empty
printf 'x' >'with space/one byte'
echo u >'ünïcödé/ß'
ln -s a/file link
ln -s /nonexistent/target dangling
ln a/file hardlink
mkfifo fifo
chmod 0751 a
chmod 0600 a/file
chown 1234:5678 a/b/rand
touch -d '2001-02-03 04:05:06.123456789' a/b/rand
touch -h -d '2002-03-04 05:06:07' link
mkdir big
for i in $(seq 1 1500); do : >"big/entry-with-a-longish-name-$i"; done
cd /

relocfs_mount

step 'ls -la of the root lists the same names, modes, owners, sizes and mtimes'
assert_eq "$(ls_la "$TEST_SRC")" "$(ls_la "$TEST_MNT")" "ls -la of the root"

step 'ls -la of subdirectories matches'
for d in a a/b a/b/c 'with space' 'ünïcödé' empty; do
	assert_eq "$(ls_la "$TEST_SRC/$d")" "$(ls_la "$TEST_MNT/$d")" "ls -la of '$d'"
done

step 'stat of every entry shows the same type, mode, links, owner, size, blocks and times'
fmt='%n|%F|%a|%h|%u:%g|%s|%b|%Y.%y|%Z|%N'
while IFS= read -r p; do
	want=$(cd "$TEST_SRC" && stat -c "$fmt" "$p")
	got=$(cd "$TEST_MNT" && stat -c "$fmt" "$p")
	assert_eq "$want" "$got" "stat of '$p'"
done < <(cd "$TEST_SRC" && find . -mindepth 1 -not -path './big/*')

step 'a directory of 1500 entries reads back complete (readdir across many buffers)'
assert_eq "$(ls -f "$TEST_SRC/big" | sort)" "$(ls -f "$TEST_MNT/big" | sort)" "ls -f of big/"
assert_eq 1502 "$(ls -fa "$TEST_MNT/big" | wc -l)" "entries of big/ with . and .."

step 'compare_trees: the whole tree, contents included'
compare_trees "$TEST_SRC" "$TEST_MNT"

step 'the hard link shows two links and the same inode through the mount'
assert_eq 2 "$(stat -c %h "$TEST_MNT/hardlink")" "link count of hardlink"
assert_eq "$(stat -c %i "$TEST_MNT/a/file")" "$(stat -c %i "$TEST_MNT/hardlink")" "inode of a/file and hardlink"

step 'looking up missing names fails with ENOENT, as on the backing directory'
want=$(cd "$TEST_SRC" && untrapped stat missing a/missing a/file/notdir 2>&1; echo "exit $?")
got=$(cd "$TEST_MNT" && untrapped stat missing a/missing a/file/notdir 2>&1; echo "exit $?")
assert_eq "$want" "$got" "stat of missing names"

step 'a file created on the backing directory after mounting is visible'
echo later >"$TEST_SRC/a/later"
assert_eq later "$(cat "$TEST_MNT/a/later")" "cat of a file created on the backing directory"

step 'readdir of the root twice gives the same result (offsets are stable)'
one=$(ls -fa "$TEST_MNT" | sort)
two=$(ls -fa "$TEST_MNT" | sort)
assert_eq "$one" "$two" "two readdirs of the root"

relocfs_umount
test_done
