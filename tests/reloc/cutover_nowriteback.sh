#!/bin/bash
# cutover_under_writer.sh on a mount without the kernel's writeback cache
# (-o nowriteback): every write(2) reaches relocfs before it returns
RELOC_MOUNT_OPTS="-o nowriteback"
. "$(dirname "$0")/cutover_under_writer.sh"
