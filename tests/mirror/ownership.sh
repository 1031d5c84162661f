#!/bin/bash
test_description='another uid through an allow_other mount: files it creates belong to it on the backing directory, and the kernel refuses what it may not do'
. "$(dirname "$0")/../lib.sh"
require_root
require_cmd setpriv
require_tool fsop
FSOP=$TOOLS/fsop

# uid 1234 must be able to reach the mountpoint and the reference directory
chmod 0755 "$TEST_DIR"
chmod 1777 "$TEST_SRC" "$TEST_REF"
as_user() { setpriv --reuid 1234 --regid 1234 --clear-groups "$@"; }
as_member() { setpriv --reuid 1234 --regid 1234 --groups 5678 "$@"; }

step 'without allow_other, uid 1234 cannot even look at the mount'
relocfs_mount
assert_eq EACCES "$(untrapped as_user "$FSOP" open "$TEST_MNT" rdonly,directory)" "open of the mount root by uid 1234"
relocfs_umount

relocfs_mount -o allow_other

step 'a file created by uid 1234 is owned 1234:1234 on the backing directory'
as_user touch "$TEST_MNT/user-file"
assert_eq 1234:1234 "$(stat -c %u:%g "$TEST_SRC/user-file")" "backing owner of user-file"
assert_eq 1234:1234 "$(stat -c %u:%g "$TEST_MNT/user-file")" "owner through the mount"

step 'directories, symlinks, fifos and hard links made by uid 1234 are owned by it'
as_user mkdir "$TEST_MNT/user-dir"
as_user ln -s user-file "$TEST_MNT/user-link"
as_user mkfifo "$TEST_MNT/user-fifo"
as_user ln "$TEST_MNT/user-file" "$TEST_MNT/user-hard"
for f in user-dir user-link user-fifo user-hard; do
	assert_eq 1234:1234 "$(stat -c %u:%g "$TEST_SRC/$f")" "backing owner of $f"
done

step 'uid 1234 writes its own file; the data and ownership land on the backing file'
echo hello | as_user tee "$TEST_MNT/user-file" >/dev/null
assert_eq hello "$(cat "$TEST_SRC/user-file")" "backing contents"
assert_eq 1234:1234 "$(stat -c %u:%g "$TEST_SRC/user-file")" "backing owner after the write"

step 'a file created with umask 027 gets mode 0640, as in a plain directory'
as_user sh -c "umask 027; touch '$TEST_MNT/masked' '$TEST_REF/masked'"
assert_eq "$(stat -c %a:%u:%g "$TEST_REF/masked")" "$(stat -c %a:%u:%g "$TEST_SRC/masked")" "backing mode and owner"

step 'in a setgid directory a new file inherits the directory group, as in a plain directory'
for d in "$TEST_MNT" "$TEST_REF"; do
	mkdir "$d/sgid"
	chown 0:5678 "$d/sgid"
	chmod 2777 "$d/sgid"
done
as_user touch "$TEST_MNT/sgid/f" "$TEST_REF/sgid/f"
as_user mkdir "$TEST_MNT/sgid/d" "$TEST_REF/sgid/d"
assert_eq "$(stat -c %u:%g "$TEST_REF/sgid/f")" "$(stat -c %u:%g "$TEST_SRC/sgid/f")" "backing owner of sgid/f"
assert_eq "$(stat -c %a:%u:%g "$TEST_REF/sgid/d")" "$(stat -c %a:%u:%g "$TEST_SRC/sgid/d")" "backing mode and owner of sgid/d"

step 'uid 1234 cannot write a 0644 root file, nor read a 0600 one, nor chmod or chown it'
for d in "$TEST_MNT" "$TEST_REF"; do
	echo secret >"$d/root-644"; chmod 0644 "$d/root-644"
	echo secret >"$d/root-600"; chmod 0600 "$d/root-600"
	mkdir "$d/root-dir"; chmod 0755 "$d/root-dir"
	echo g >"$d/group-rw"; chown 0:5678 "$d/group-rw"; chmod 0664 "$d/group-rw"
done
try() {	# try DIR: what uid 1234 gets for each operation in DIR
	echo "write 644: $(untrapped as_user "$FSOP" open "$1/root-644" wronly)"
	echo "read 644: $(untrapped as_user "$FSOP" open "$1/root-644" rdonly)"
	echo "read 600: $(untrapped as_user "$FSOP" open "$1/root-600" rdonly)"
	echo "truncate 644: $(untrapped as_user "$FSOP" open "$1/root-644" wronly,trunc)"
	echo "create in 755 dir: $(untrapped as_user "$FSOP" open "$1/root-dir/new" creat,wronly)"
	echo "chmod: $(untrapped as_user chmod 777 "$1/root-644" 2>&1 | sed 's|.*: ||')"
	echo "chown: $(untrapped as_user chown 1234 "$1/root-644" 2>&1 | sed 's|.*: ||')"
	echo "unlink in sticky dir: $(untrapped as_user rm -f "$1/root-644" 2>&1 | sed 's|.*: ||')"
	echo "rename in sticky dir: $(untrapped as_user mv "$1/root-600" "$1/stolen" 2>&1 | sed 's|.*: ||')"
	echo "touch -d other's file: $(untrapped as_user touch -d 2001-01-01 "$1/root-644" 2>&1 | sed 's|.*: ||')"
	echo "write group file, not member: $(untrapped as_user "$FSOP" open "$1/group-rw" wronly)"
	echo "write group file, member: $(untrapped as_member "$FSOP" open "$1/group-rw" wronly)"
	echo "setxattr user.x on other's file: $(untrapped as_user setfattr -n user.x -v 1 "$1/root-644" 2>&1 | sed 's|.*: ||')"
}
want=$(try "$TEST_REF")
say "$want"
assert_eq "$want" "$(try "$TEST_MNT")" "what uid 1234 may do: plain directory (expected), mount (actual)"
case $want in *"write 644: EACCES"*) ;; *) fail "the plain directory let uid 1234 write a 0644 root file: $want";; esac
assert_eq secret "$(cat "$TEST_SRC/root-644")" "backing root-644 untouched"
assert_eq 644:0:0 "$(stat -c %a:%u:%g "$TEST_SRC/root-644")" "backing root-644 mode and owner untouched"

step 'uid 1234 cannot chown its own file to someone else, but can chmod it'
assert_eq "$(as_user touch "$TEST_REF/user-own"; untrapped as_user chown 0 "$TEST_REF/user-own" 2>&1 | sed 's|.*: ||')" \
	"$(untrapped as_user chown 0 "$TEST_MNT/user-file" 2>&1 | sed 's|.*: ||')" "chown of own file to root"
as_user chmod 600 "$TEST_MNT/user-file"
assert_eq 600:1234:1234 "$(stat -c %a:%u:%g "$TEST_SRC/user-file")" "backing after chmod by the owner"

step 'a write, a truncate and an open with O_TRUNC by uid 1234 clear setuid and setgid as in a plain directory; root keeps them'
for mode in 4777 6777 2777 2767 6757; do
	in_both sh -c "touch sx; chmod $mode sx; echo x | setpriv --reuid 1234 --regid 1234 --clear-groups tee -a sx >/dev/null; stat -c %a sx"
	in_both sh -c "chmod $mode sx; setpriv --reuid 1234 --regid 1234 --clear-groups truncate -s 3 sx; stat -c %a sx"
	in_both sh -c "chmod $mode sx; setpriv --reuid 1234 --regid 1234 --clear-groups sh -c ': >sx'; stat -c %a sx"
	in_both sh -c "chmod $mode sx; echo y >>sx; truncate -s 1 sx; stat -c %a sx"
	assert_eq "$(stat -c %a "$TEST_REF/sx")" "$(stat -c %a "$TEST_SRC/sx")" "backing mode of sx after root's write and truncate ($mode)"
done
# a member of the file's group keeps a setgid its group may not execute
in_both sh -c "chmod 6767 sx; echo x | setpriv --reuid 1234 --regid 1234 --groups 0 tee -a sx >/dev/null; stat -c %a sx"
say "    modes after uid 1234's write: $(cd "$TEST_REF" && for m in 4777 6777 2777 2767 6757; do chmod $m sx; echo x | setpriv --reuid 1234 --regid 1234 --clear-groups tee -a sx >/dev/null; printf '%s->%s ' $m "$(stat -c %a sx)"; done)"
rm -f "$TEST_MNT/sx" "$TEST_REF/sx"

step 'a write drops the file capabilities, by uid 1234 and by root alike, as in a plain directory'
require_cmd setcap
in_both sh -c "cp /bin/true cap; chmod 777 cap; setcap cap_net_raw+ep cap; getcap cap"
in_both sh -c "echo x | setpriv --reuid 1234 --regid 1234 --clear-groups tee -a cap >/dev/null; getcap cap"
in_both sh -c "setcap cap_net_raw+ep cap; echo x >>cap; getcap cap; rm cap"

step 'root can read everything uid 1234 made, and ls -la matches the backing directory'
assert_eq "$(ls_la "$TEST_SRC")" "$(ls_la "$TEST_MNT")" "ls -la of the root"

relocfs_umount
test_done
