#!/bin/bash
# kill_during_copy.sh on a mount with the kernel's writeback cache: what the
# writer flushed must survive; dirty pages it had not flushed may be lost
RELOC_MOUNT_OPTS="-o writeback"
. "$(dirname "$0")/kill_during_copy.sh"
