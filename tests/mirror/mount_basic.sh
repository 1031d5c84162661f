#!/bin/bash
test_description='mounting and unmounting: two-directory form, over-mount form, daemon mode, .relocfs hidden'
. "$(dirname "$0")/../lib.sh"

echo content >"$TEST_SRC/file"
mkdir "$TEST_SRC/dir"

step 'relocfs -f SOURCE MNT mounts a FUSE filesystem at MNT'
relocfs_mount
is_mounted "$TEST_MNT" || fail "'$TEST_MNT' is not in /proc/self/mountinfo"
assert_eq "content" "$(cat "$TEST_MNT/file")" "a file of the source read through the mount"

step 'the mount shows the default_permissions option'
opts=$(awk -v m="$TEST_MNT" '$5 == m { print $NF }' /proc/self/mountinfo)
case ",$opts," in *,default_permissions,*) ;; *) fail "super options '$opts' lack default_permissions";; esac

step 'fusermount3 -u unmounts and the daemon exits with status 0'
relocfs_umount
assert_eq "" "$(ls -A "$TEST_MNT")" "the mountpoint is empty again"

step 'without -f relocfs daemonizes: the command returns and the mount stays'
require_daemon
"$RELOCFS" $(transport_opt) "$TEST_SRC" "$TEST_MNT" >"$TEST_DIR/daemon.out" 2>&1 || fail "relocfs exited non-zero: $(cat "$TEST_DIR/daemon.out")"
wait_until 20 is_mounted "$TEST_MNT" || fail "no mount at '$TEST_MNT' after relocfs returned"
assert_eq "content" "$(cat "$TEST_MNT/file")" "a file read through the daemonized mount"
daemons=$(leftover_daemons)
[ -n "$daemons" ] || fail "no relocfs process found for '$TEST_MNT'"
RELOCFS_MOUNTED=$TEST_MNT relocfs_umount
wait_until 20 eval '[ -z "$(leftover_daemons)" ]' || fail "daemon $daemons still runs after unmount"

step 'relocfs DIR over-mounts DIR: the same files are served at DIR itself'
over=$TEST_DIR/over
mkdir "$over"
echo old >"$over/image.raw"
"$RELOCFS" -f $(transport_opt) "$over" >>"$TEST_DIR/relocfs.log" 2>&1 &
RELOCFS_PID=$! RELOCFS_MOUNTED=$over
wait_until 20 mount_or_died "$over" && is_mounted "$over" || fail "relocfs '$over' did not over-mount it"
assert_eq "old" "$(cat "$over/image.raw")" "a file read through the over-mount"
echo new >"$over/image.raw"
assert_eq "new" "$(cat "$over/image.raw")" "a write through the over-mount"
relocfs_umount
assert_eq "new" "$(cat "$over/image.raw")" "after unmount the underlying file holds the write"

step 'the .relocfs state directory is hidden at the root of the mount'
relocfs_mount
mkdir -p "$TEST_SRC/.relocfs"
assert_eq "dir file" "$(ls -A "$TEST_MNT" | tr '\n' ' ' | sed 's/ $//')" "ls -A of the mount root"
[ ! -e "$TEST_MNT/.relocfs" ] || fail "'$TEST_MNT/.relocfs' is visible through the mount"

step 'a .relocfs below the root is an ordinary directory'
mkdir "$TEST_MNT/dir/.relocfs"
echo inner >"$TEST_MNT/dir/.relocfs/f"
assert_eq inner "$(cat "$TEST_SRC/dir/.relocfs/f")" "backing dir/.relocfs/f"
assert_eq ".relocfs" "$(ls -A "$TEST_MNT/dir")" "ls -A of dir"
relocfs_umount

test_done
