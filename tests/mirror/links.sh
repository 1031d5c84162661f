#!/bin/bash
test_description='hard links, symlinks, readlink and mknod (fifo, devices) through the mount'
. "$(dirname "$0")/../lib.sh"
relocfs_mount

step 'ln makes a hard link: two names, one inode on the backing directory'
in_both sh -c 'echo data >orig; ln orig hard; stat -c %h orig hard'
assert_eq "$(stat -c %i "$TEST_SRC/orig")" "$(stat -c %i "$TEST_SRC/hard")" "backing inodes of orig and hard"
echo more >>"$TEST_MNT/hard"
echo more >>"$TEST_REF/hard"
assert_eq "data
more" "$(cat "$TEST_MNT/orig")" "a write through one name is seen through the other"

step 'unlinking one name leaves the other with one link'
in_both sh -c 'rm orig; stat -c %h hard; cat hard'

step 'ln refuses an existing name and a directory'
in_both sh -c 'echo x >other; mkdir dir'
in_both ln hard other
in_both ln dir dirlink

step 'ln -s makes symlinks whose targets are stored unchanged'
in_both ln -s hard rel
in_both ln -s /absolute/not/rewritten abs
in_both ln -s ../../up/../twisted tw
in_both ln -s "$(printf 'x%.0s' $(seq 1 1000))" long
for l in rel abs tw long; do
	assert_eq "$(readlink "$TEST_REF/$l")" "$(readlink "$TEST_SRC/$l")" "backing target of '$l'"
	assert_eq "$(readlink "$TEST_REF/$l")" "$(readlink "$TEST_MNT/$l")" "readlink of '$l' through the mount"
done
in_both cat rel
in_both cat abs
in_both stat -L -c '%s %F' rel

step 'a symlink is created on the backing directory as a symlink'
assert_eq "symbolic link" "$(stat -c %F "$TEST_SRC/rel")" "backing type of rel"

step 'mkfifo makes a fifo on the backing directory that passes data through the mount'
in_both mkfifo -m 0640 fifo
assert_eq "fifo 640" "$(stat -c '%F %a' "$TEST_SRC/fifo" | sed 's/^fifo[^ ]*/fifo/')" "backing fifo"
(echo through-fifo >"$TEST_MNT/fifo") &
writer=$!
assert_eq through-fifo "$(cat "$TEST_MNT/fifo")" "data read from the fifo"
wait "$writer"

step 'mknod makes character and block device nodes with the right numbers'
require_root
in_both mknod -m 0600 chr c 1 3
in_both mknod blk b 7 200
assert_eq "$(stat -c '%F %t:%T %a' "$TEST_REF/chr")" "$(stat -c '%F %t:%T %a' "$TEST_SRC/chr")" "backing char device"
assert_eq "$(stat -c '%F %t:%T %a' "$TEST_REF/blk")" "$(stat -c '%F %t:%T %a' "$TEST_MNT/blk")" "block device through the mount"

step 'ls -la and the tree match'
assert_eq "$(ls_la "$TEST_SRC" | awk '{$6=$7=""; print}')" "$(ls_la "$TEST_MNT" | awk '{$6=$7=""; print}')" "ls -la of the root"
compare_trees "$TEST_REF" "$TEST_SRC"

relocfs_umount
test_done
