#!/bin/bash
test_description='setattr through the mount: truncate, chmod, chown, touch -d reach the backing file'
. "$(dirname "$0")/../lib.sh"

head -c 100000 /dev/urandom >"$TEST_SRC/file"
cp "$TEST_SRC/file" "$TEST_REF/file"
mkdir "$TEST_SRC/dir" "$TEST_REF/dir"
ln -s file "$TEST_SRC/link"
ln -s file "$TEST_REF/link"
relocfs_mount

step 'truncate shrinks the backing file and keeps the head'
in_both truncate -s 5000 file
assert_eq 5000 "$(stat -c %s "$TEST_SRC/file")" "backing size after truncate -s 5000"
cmp "$TEST_REF/file" "$TEST_SRC/file" || fail "backing file differs after shrinking"

step 'truncate extends with zeros'
in_both truncate -s 1000001 file
assert_eq 1000001 "$(stat -c %s "$TEST_SRC/file")" "backing size after truncate -s 1000001"
cmp "$TEST_REF/file" "$TEST_MNT/file" || fail "file read through the mount differs after extending"
cmp "$TEST_REF/file" "$TEST_SRC/file" || fail "backing file differs after extending"

step 'truncate to zero and to an unaligned size'
in_both truncate -s 0 file
in_both truncate -s 4097 file
cmp "$TEST_REF/file" "$TEST_SRC/file" || fail "backing file differs"

step 'ftruncate on an open descriptor (shell >> then truncate via /proc/self/fd)'
in_both sh -c 'exec 3<>file; truncate -s 77 /proc/self/fd/3; stat -c %s file'

step 'chmod sets every permission bit on the backing file'
for mode in 600 644 755 700 000 4755 2755 1777 6711 0444; do
	in_both chmod $mode file
	assert_eq "$(stat -c %a "$TEST_REF/file")" "$(stat -c %a "$TEST_SRC/file")" "backing mode after chmod $mode"
	assert_eq "$(stat -c %a "$TEST_REF/file")" "$(stat -c %a "$TEST_MNT/file")" "mode through the mount after chmod $mode"
done
in_both chmod 1777 dir
assert_eq 1777 "$(stat -c %a "$TEST_SRC/dir")" "backing mode of dir after chmod 1777"

step 'chown and chgrp set the owner of the backing file'
require_root
in_both chown 1234:5678 file
assert_eq 1234:5678 "$(stat -c %u:%g "$TEST_SRC/file")" "backing owner after chown 1234:5678"
in_both chgrp 42 file
assert_eq 1234:42 "$(stat -c %u:%g "$TEST_SRC/file")" "backing owner after chgrp 42"
in_both chown 0:0 file
in_both chown -h 99:98 link
assert_eq 99:98 "$(stat -c %u:%g "$TEST_SRC/link")" "backing owner of the symlink after chown -h"
assert_eq 0:0 "$(stat -c %u:%g "$TEST_SRC/file")" "chown -h of the link left its target alone"

step 'chown clears setuid on a regular file, as the kernel does'
in_both sh -c 'chmod 6755 file; chown 1:1 file; stat -c %a file'

step 'touch -d sets mtime and atime to the nanosecond on the backing file'
in_both touch -d '2001-02-03 04:05:06.123456789' file
assert_eq "2001-02-03 04:05:06.123456789" "$(TZ=UTC0 stat -c %y "$TEST_SRC/file" | cut -d' ' -f1,2)" "backing mtime"
in_both touch -a -d '1999-12-31 23:59:59.5' file
assert_eq "$(stat -c %X.%x "$TEST_REF/file")" "$(stat -c %X.%x "$TEST_SRC/file")" "backing atime after touch -a"
assert_eq "$(stat -c %Y.%y "$TEST_REF/file")" "$(stat -c %Y.%y "$TEST_SRC/file")" "touch -a left mtime alone"
in_both touch -m -d '2030-01-01 00:00:00' file
assert_eq "$(stat -c %X.%x:%Y.%y "$TEST_REF/file")" "$(stat -c %X.%x:%Y.%y "$TEST_SRC/file")" "times after touch -m"
assert_eq "$(stat -c %X.%x:%Y.%y "$TEST_SRC/file")" "$(stat -c %X.%x:%Y.%y "$TEST_MNT/file")" "times through the mount"

step 'touch -h sets the times of the symlink itself'
in_both touch -h -d '2005-05-05 05:05:05' link
assert_eq "$(stat -c %Y "$TEST_REF/link")" "$(stat -c %Y "$TEST_SRC/link")" "backing mtime of the symlink"
assert_eq "$(stat -c %Y "$TEST_REF/file")" "$(stat -c %Y "$TEST_SRC/file")" "mtime of the link target unchanged"

step 'touch without -d sets the times to now (UTIME_NOW), not to zero'
# "now" as the backing filesystem stamps it: its clock is the kernel's
# coarse one, which can trail date(1) by a tick across a second boundary
touch "$TEST_DIR/now-ref"
before=$(stat -c %Y "$TEST_DIR/now-ref")
rm -f "$TEST_DIR/now-ref"
touch "$TEST_MNT/file"
t=$(stat -c %Y "$TEST_SRC/file")
[ "$t" -ge "$before" ] || fail "backing mtime $t is before $before after touch"

step 'a write updates mtime and ctime on the backing file'
touch -d '2001-01-01' "$TEST_MNT/file"
echo more >>"$TEST_MNT/file"
t=$(stat -c %Y "$TEST_SRC/file")
[ "$t" -ge "$before" ] || fail "backing mtime $t still old after a write"

step 'the whole tree matches the backing directory'
compare_trees "$TEST_SRC" "$TEST_MNT"

relocfs_umount
test_done
