#!/bin/bash
test_description='a file opened with O_DIRECT can be mapped through the mount (Linux 6.6+ with FUSE_DIRECT_IO_ALLOW_MMAP; ext4 allows it, relocfs used to fail with ENODEV), and the mapping and direct I/O see each other'"'"'s writes, in the mount and in the backing file'
. "$(dirname "$0")/../lib.sh"
require_tool dio_mmap

# the INIT flag exists from Linux 6.6; older kernels refuse the mapping
kver=$(uname -r)
kmaj=${kver%%.*} rest=${kver#*.}
kmin=${rest%%[!0-9]*}
[ "$kmaj" -gt 6 ] || { [ "$kmaj" = 6 ] && [ "$kmin" -ge 6 ]; } ||
	skip "Linux $kver has no FUSE_DIRECT_IO_ALLOW_MMAP (6.6+)"

step 'the same on the backing directory (what the mount must behave like)'
"$TOOLS/dio_mmap" "$TEST_REF/img" "$TEST_REF/img" >/dev/null 2>&1 ||
	skip "the backing filesystem itself refuses it"

relocfs_mount
step 'map an O_DIRECT descriptor, write through the mapping and with O_DIRECT, read both ways'
out=$("$TOOLS/dio_mmap" "$TEST_MNT/img" "$TEST_SRC/img" 2>&1) || fail "$out"
say "$out" | sed 's/^/    /'

relocfs_umount
test_done
