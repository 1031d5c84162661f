#!/bin/bash
# kill_during_copy.sh on a mount without the kernel's writeback cache
# (-o nowriteback): every write(2) reaches relocfs as it is made
RELOC_MOUNT_OPTS="-o nowriteback"
. "$(dirname "$0")/kill_during_copy.sh"
