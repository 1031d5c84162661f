#!/bin/bash
# cutover_under_writer.sh on a mount with the kernel's writeback cache: dirty
# pages reach the daemon late, some of them after the switch
RELOC_MOUNT_OPTS="-o writeback"
. "$(dirname "$0")/cutover_under_writer.sh"
