#!/bin/bash
# fsverify_cycles.sh on a mount with the kernel's writeback cache: SEEK_DATA
# and SEEK_HOLE must not call a cached page a hole, across relocation cycles
RELOC_MOUNT_OPTS="-o writeback"
. "$(dirname "$0")/fsverify_cycles.sh"
