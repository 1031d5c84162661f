#!/bin/bash
# cutover_under_writer.sh on a mount without the kernel's writeback cache
# (the default has it): every buffered write reaches the daemon at once
RELOC_MOUNT_OPTS="-o nowriteback"
. "$(dirname "$0")/cutover_under_writer.sh"
