#!/bin/bash
# fsverify_cycles.sh on a mount without the kernel's writeback cache
# (-o nowriteback): SEEK_DATA and SEEK_HOLE answered from the backing file
RELOC_MOUNT_OPTS="-o nowriteback"
. "$(dirname "$0")/fsverify_cycles.sh"
