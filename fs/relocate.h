/*
 * relocate: live relocation of the served tree, or of some files in it.
 * migrate starts the delta stores and the copier, cutover switches the files
 * to the destination inside one short hold, abort returns everything to the
 * source; the mount's state record (fs/mount_state.h) makes each step
 * survive a restart of the daemon.
 *
 * Called by main (init, attach, start, stop) and by the control server
 * (commands, each from its own thread; commands that change state are
 * serialised inside).
 */
#ifndef RELOCFS_RELOCATE_H
#define RELOCFS_RELOCATE_H

#include <stddef.h>

#include "ctl/proto.h"

/* Before mounting: read SOURCE/.relocfs, finish what a crash interrupted
 * (an abort, the cleanup after a cutover), and decide which directory the
 * mount serves.  source_fd is an O_PATH descriptor on SOURCE_DIR; on success
 * *root_fd is an O_PATH descriptor on the directory to serve.  -errno and one
 * line in err on failure. */
int reloc_init(int source_fd, const char *source_path, const char *mountpoint,
	       int *root_fd, char *err, size_t errlen);

/* After the node table exists and before mounting: route the files of a
 * migration found in the state through their delta stores. */
int reloc_attach(char *err, size_t errlen);

/* After daemonizing: start the copier of a resumed migration. */
int reloc_start(void);

/* Stop the copier threads (on unmount); the state stays on disk. */
void reloc_stop(void);

/* Run one control command.  *out is a malloc'd reply text; returns the exit
 * status for relocctl (CTL_OK, CTL_EFAIL, CTL_EUSAGE). */
int reloc_command(const struct ctl_request *req, char **out);

#endif
