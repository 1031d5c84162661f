#!/bin/bash
test_description='mkdir, rmdir, unlink and rename (mv -T, renameat2 RENAME_NOREPLACE and RENAME_EXCHANGE) behave as in a plain directory'
. "$(dirname "$0")/../lib.sh"
require_tool fsop
FSOP=$TOOLS/fsop
relocfs_mount

step 'mkdir creates directories, nested and with a mode'
in_both mkdir d1
in_both mkdir -p d2/sub/subsub
in_both mkdir -m 0710 d3
in_both mkdir d1
in_both mkdir missing/child
assert_eq 710 "$(stat -c %a "$TEST_SRC/d3")" "backing mode of mkdir -m 0710"
compare_trees "$TEST_REF" "$TEST_SRC"

step 'rmdir removes empty directories and refuses others'
in_both sh -c 'echo x >d2/sub/file'
in_both rmdir d2/sub
in_both rmdir d2/sub/file
in_both rmdir nothere
in_both rmdir d1
[ ! -e "$TEST_SRC/d1" ] || fail "d1 still exists on the backing directory"
compare_trees "$TEST_REF" "$TEST_SRC"

step 'unlink removes files, refuses directories, and an open file stays readable'
in_both sh -c 'echo a >u1; echo b >u2'
in_both rm u1
in_both rm u1
in_both unlink d3
[ ! -e "$TEST_SRC/u1" ] || fail "u1 still exists on the backing directory"
in_both sh -c 'exec 3<u2; rm u2; cat <&3; ls'

step 'rename of a file: to a new name, over an existing file, into a subdirectory'
in_both sh -c 'echo 1 >r1; echo 2 >r2; echo 3 >r3'
in_both mv r1 renamed
in_both mv -f r2 r3
in_both mv r3 d2/sub/
in_both cat d2/sub/r3
compare_trees "$TEST_REF" "$TEST_SRC"
compare_trees "$TEST_REF" "$TEST_MNT"

step 'rename of a directory, and mv -T onto an empty and a non-empty directory'
in_both mkdir -p t1/in t2 t3
in_both sh -c 'echo x >t3/keep'
in_both mv -T t1 t2
in_both mv -T t2 t3
in_both mv -T d2 d2/sub/subsub
in_both mv renamed t2
in_both mv t2 renamed
compare_trees "$TEST_REF" "$TEST_SRC"
compare_trees "$TEST_REF" "$TEST_MNT"

step 'renameat2 RENAME_NOREPLACE refuses an existing target and works on a new one'
in_both sh -c 'echo a >na; echo b >nb'
in_both "$FSOP" renameat2 noreplace na nb
in_both "$FSOP" renameat2 noreplace na nc
in_both cat nb nc
compare_trees "$TEST_REF" "$TEST_SRC"

step 'renameat2 RENAME_EXCHANGE swaps two files, and a file with a directory'
in_both "$FSOP" renameat2 exchange nb nc
in_both cat nb nc
assert_eq a "$(cat "$TEST_SRC/nb")" "backing nb after exchange"
in_both "$FSOP" renameat2 exchange nb t3
in_both ls -la --time-style=+ nb t3
in_both "$FSOP" renameat2 exchange nb nothere
compare_trees "$TEST_REF" "$TEST_SRC"
compare_trees "$TEST_REF" "$TEST_MNT"

step 'a file renamed while open keeps its contents for the open descriptor'
in_both sh -c 'echo keep >o1; exec 3<o1; mv o1 o2; cat <&3; cat o2'

step 'rename across directories of many files'
in_both sh -c 'mkdir many; for i in $(seq 1 200); do echo $i >many/f$i; done; mkdir many2; for i in $(seq 1 200); do mv many/f$i many2/g$i; done; ls many | wc -l; cat many2/g137'
compare_trees "$TEST_REF" "$TEST_SRC"

relocfs_umount
test_done
