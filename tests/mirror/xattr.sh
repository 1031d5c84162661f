#!/bin/bash
test_description='extended attributes: setfattr and getfattr through the mount reach the backing file, and errors match a plain directory'
. "$(dirname "$0")/../lib.sh"
require_cmd setfattr getfattr

echo data >"$TEST_SRC/file"
echo data >"$TEST_REF/file"
mkdir "$TEST_SRC/dir" "$TEST_REF/dir"
setfattr -n user.probe -v 1 "$TEST_REF/file" 2>/dev/null || skip "the backing filesystem has no user xattrs"
setfattr -x user.probe "$TEST_REF/file"
relocfs_mount

step 'setfattr through the mount sets the attribute on the backing file'
in_both setfattr -n user.color -v blue file
assert_eq blue "$(getfattr --absolute-names --only-values -n user.color "$TEST_SRC/file")" "backing value of user.color"

step 'an attribute set on the backing file is read through the mount'
setfattr -n user.from-backing -v 0x00ff00 "$TEST_SRC/file"
setfattr -n user.from-backing -v 0x00ff00 "$TEST_REF/file"
in_both getfattr -e hex -n user.from-backing file

step 'getfattr -d lists the same attributes (listxattr)'
in_both setfattr -n user.empty file
in_both setfattr -n user.dir -v d dir
in_both getfattr -d -e hex file
in_both getfattr -d -e hex dir

step 'a large value (3000 bytes) round-trips, and a 64 KiB one fails alike'
big=$(head -c 1500 /dev/urandom | od -An -tx1 | tr -d ' \n')
in_both setfattr -n user.big -v "0x$big" file
in_both getfattr -e hex -n user.big file
huge=$(head -c 70000 /dev/zero | od -An -tx1 -v | tr -d ' \n')
in_both setfattr -n user.huge -v "0x$huge" file

step 'missing attributes and removal fail and succeed as in a plain directory'
in_both getfattr -n user.none file
in_both setfattr -x user.none file
in_both setfattr -x user.color file
in_both getfattr -n user.color file
[ -z "$(getfattr --absolute-names -n user.color "$TEST_SRC/file" 2>/dev/null)" ] || fail "user.color still on the backing file"
in_both getfattr -d -e hex file

step 'the trusted namespace works for root'
require_root
in_both setfattr -n trusted.reloc -v t file
in_both getfattr -e text -n trusted.reloc file
assert_eq t "$(getfattr --absolute-names --only-values -n trusted.reloc "$TEST_SRC/file")" "backing trusted.reloc"

step 'an invalid namespace fails alike'
in_both setfattr -n bogus.name -v x file

relocfs_umount
test_done
