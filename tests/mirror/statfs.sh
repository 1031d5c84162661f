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

step 'writing 32 MiB through the mount lowers the free blocks seen through the mount'
before=$(stat -f -c %a "$TEST_MNT")
dd if=/dev/urandom of="$TEST_MNT/fill" bs=1M count=32 conv=fsync status=none
after=$(stat -f -c %a "$TEST_MNT")
bs=$(stat -f -c %S "$TEST_MNT")
[ $(( (before - after) * bs )) -gt $((16 << 20)) ] ||
	fail "available bytes went from $((before * bs)) to $((after * bs)) after writing 32 MiB (others may write too; rerun)"

relocfs_umount
test_done
