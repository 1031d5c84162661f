#!/bin/bash
test_description='a buffered write read back by its writer is what it wrote, while other threads read the file and change its times (the kernel once dropped a page whose write was on its way and cached the old one read in meanwhile)'
. "$(dirname "$0")/../lib.sh"
require_tool readback

relocfs_mount
step '30000 rounds of write and read back of one page, with readers and a toucher beside'
out=$("$TOOLS/readback" "$TEST_MNT/f" 30000 2>&1) || fail "$out"
say "  $out"
step 'the backing file ends with the last value written'
cmp -s "$TEST_MNT/f" "$TEST_SRC/f" || fail "the backing file differs from the mount's"

relocfs_umount
test_done
