#!/bin/bash
test_description='statfs through the mount reports the backing filesystem (df, stat -f)'
. "$(dirname "$0")/../lib.sh"
relocfs_mount

step 'stat -f shows the backing block size, total blocks, total inodes and name length'
fmt='bsize=%S blocks=%b files=%c namelen=%l'
assert_eq "$(stat -f -c "$fmt" "$TEST_SRC")" "$(stat -f -c "$fmt" "$TEST_MNT")" "stat -f of source and mount"

step 'free blocks and inodes are those of the backing filesystem (within 1%, others write meanwhile)'
read -r fs_free fs_avail fs_ffree < <(stat -f -c '%f %a %d' "$TEST_SRC")
read -r m_free m_avail m_ffree < <(stat -f -c '%f %a %d' "$TEST_MNT")
blocks=$(stat -f -c %b "$TEST_SRC")
files=$(stat -f -c %c "$TEST_SRC")
close() { local d=$(($1 - $2)); [ ${d#-} -le $(($3 / 100 + 16)) ]; }
close "$fs_free" "$m_free" "$blocks" || fail "free blocks: backing $fs_free, mount $m_free"
close "$fs_avail" "$m_avail" "$blocks" || fail "available blocks: backing $fs_avail, mount $m_avail"
close "$fs_ffree" "$m_ffree" "$files" || fail "free inodes: backing $fs_ffree, mount $m_ffree"

step 'df of the mount shows the size of the backing filesystem'
assert_eq "$(df -P -B1 "$TEST_SRC" | awk 'NR == 2 { print $2 }')" "$(df -P -B1 "$TEST_MNT" | awk 'NR == 2 { print $2 }')" "df size"

step 'statfs of a file below the mount answers the same'
mkdir -p "$TEST_SRC/sub"
echo x >"$TEST_SRC/sub/f"
assert_eq "$(stat -f -c "$fmt" "$TEST_SRC/sub/f")" "$(stat -f -c "$fmt" "$TEST_MNT/sub/f")" "stat -f of sub/f"

relocfs_umount

step 'on a private ext4 (loop device) statfs through the mount equals the backing one exactly, free space included'
require_root
require_cmd mkfs.ext4
truncate -s 128M "$TEST_DIR/fs.img"
mkfs.ext4 -q -F "$TEST_DIR/fs.img"
mount -o loop "$TEST_DIR/fs.img" "$TEST_SRC" 2>"$TEST_DIR/loop.err" || skip "cannot mount a loop device: $(cat "$TEST_DIR/loop.err")"
at_cleanup umount "$TEST_SRC"
relocfs_mount
all='bsize=%S blocks=%b free=%f avail=%a files=%c ffree=%d namelen=%l'
assert_eq "$(stat -f -c "$all" "$TEST_SRC")" "$(stat -f -c "$all" "$TEST_MNT")" "stat -f of the private filesystem"

step 'writing 32 MiB through the mount lowers the free space seen through the mount by 32 MiB'
before=$(stat -f -c %a "$TEST_MNT")
dd if=/dev/urandom of="$TEST_MNT/fill" bs=1M count=32 conv=fsync status=none
sync -f "$TEST_MNT"
after=$(stat -f -c %a "$TEST_MNT")
bs=$(stat -f -c %S "$TEST_MNT")
[ $(( (before - after) * bs )) -ge $((32 << 20)) ] ||
	fail "available bytes went from $((before * bs)) to $((after * bs)) after writing 32 MiB"
assert_eq "$(stat -f -c "$all" "$TEST_SRC")" "$(stat -f -c "$all" "$TEST_MNT")" "stat -f after the write"

step 'removing the file gives the space back'
rm "$TEST_MNT/fill"
sync -f "$TEST_MNT"
# dd's close reaches relocfs as a RELEASE the kernel sends in the
# background, and the backing file's blocks are freed only when relocfs
# closes it: that may come after the rm
space_back() { [ "$(stat -f -c %a "$TEST_MNT")" = "$before" ]; }
wait_until 10 space_back || true
assert_eq "$before" "$(stat -f -c %a "$TEST_MNT")" "available blocks after removing the file"

step 'a full filesystem reports ENOSPC through the mount, as on the backing directory'
if dd if=/dev/zero of="$TEST_MNT/full" bs=1M count=200 status=none 2>"$TEST_DIR/dd.err"; then
	fail "writing 200 MiB into a 128 MiB filesystem succeeded"
fi
grep -q 'No space left on device' "$TEST_DIR/dd.err" || fail "dd failed otherwise: $(cat "$TEST_DIR/dd.err")"
assert_eq 0 "$(stat -f -c %a "$TEST_MNT")" "available blocks on the full filesystem"
rm "$TEST_MNT/full"

relocfs_umount
test_done
