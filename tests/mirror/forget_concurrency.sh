#!/bin/bash
test_description='the node table under churn: many lookups, forgets (dropped dentry caches), hard links and renames, and several processes at once, then the tree still matches'
. "$(dirname "$0")/../lib.sh"
require_root

drop_caches() {	# make the kernel FORGET the nodes it does not hold open
	sync
	echo 2 >/proc/sys/vm/drop_caches 2>/dev/null || skip "cannot write /proc/sys/vm/drop_caches"
}
relocfs_mount

step '2000 files created through the mount, caches dropped, every file looked up again'
mkdir "$TEST_MNT/many"
for i in $(seq 1 2000); do echo "$i" >"$TEST_MNT/many/f$i"; done
drop_caches
for i in 1 2 999 1000 1999 2000; do
	assert_eq "$i" "$(cat "$TEST_MNT/many/f$i")" "many/f$i after dropping caches"
done
assert_eq 2000 "$(find "$TEST_MNT/many" -type f | wc -l)" "files found after dropping caches"
compare_trees "$TEST_SRC" "$TEST_MNT"

step 'an open descriptor survives dropped caches and a rename of its file'
exec 5>>"$TEST_MNT/many/f7"
mv "$TEST_MNT/many/f7" "$TEST_MNT/renamed7"
drop_caches
echo appended >&5
exec 5>&-
assert_eq "7
appended" "$(cat "$TEST_SRC/renamed7")" "backing renamed7 after writing through the old descriptor"

step 'an unlinked but open file stays readable and writable through its descriptor'
exec 6>>"$TEST_MNT/many/f8"
rm "$TEST_MNT/many/f8"
drop_caches
echo still-here >&6
assert_eq "8
still-here" "$(cat /proc/self/fd/6)" "contents through the descriptor of an unlinked file"
exec 6>&-
[ ! -e "$TEST_SRC/many/f8" ] || fail "the unlinked file is still on the backing directory"

step 'hard links keep working after their first name is forgotten'
ln "$TEST_MNT/many/f9" "$TEST_MNT/link9"
drop_caches
rm "$TEST_MNT/many/f9"
drop_caches
echo more >>"$TEST_MNT/link9"
assert_eq "9
more" "$(cat "$TEST_SRC/link9")" "backing link9"
assert_eq 1 "$(stat -c %h "$TEST_MNT/link9")" "links of link9 through the mount"

step 'a name reused for a new file after the old one was deleted and forgotten'
for i in $(seq 1 50); do
	rm "$TEST_MNT/many/f$((100 + i))"
	mkdir "$TEST_MNT/many/f$((100 + i))"
done
drop_caches
assert_eq directory "$(stat -c %F "$TEST_MNT/many/f120")" "type of the reused name many/f120"
compare_trees "$TEST_SRC" "$TEST_MNT"

step 'four processes create, rename, append and delete in parallel while two others list the tree'
worker() {	# worker N: churn in its own directory, then leave a known state
	local d=$TEST_MNT/w$1 i
	mkdir "$d"
	for i in $(seq 1 300); do
		echo "$1-$i" >"$d/a$i"
		mv "$d/a$i" "$d/b$i"
		echo tail >>"$d/b$i"
		[ $((i % 3)) != 0 ] || rm "$d/b$i"
		[ $((i % 50)) != 0 ] || mkdir "$d/sub$i"
	done
}
lister() {
	local i
	for i in $(seq 1 30); do find "$TEST_MNT" >/dev/null 2>&1 || true; ls -laR "$TEST_MNT" >/dev/null 2>&1 || true; done
}
pids=()
for n in 1 2 3 4; do worker $n & pids+=($!); done
lister & pids+=($!)
lister & pids+=($!)
for p in "${pids[@]}"; do wait "$p" || fail "a worker or lister exited with an error"; done
for n in 1 2 3 4; do
	assert_eq 200 "$(find "$TEST_SRC/w$n" -maxdepth 1 -type f | wc -l)" "files left by worker $n on the backing directory"
	assert_eq "$n-299
tail" "$(cat "$TEST_MNT/w$n/b299")" "w$n/b299 through the mount"
done
drop_caches
compare_trees "$TEST_SRC" "$TEST_MNT"

relocfs_umount
test_done
