/*
 * service: what relocfs tells its service manager, and what it is handed
 * back by it (systemd's notify socket and file descriptor store, through
 * libsystemd).  Without NOTIFY_SOCKET and LISTEN_FDS in the environment (a
 * shell, mount(8), the tests) every call does nothing.
 *
 * Under relocfs@.service (Type=notify, relocfs -f), the daemon
 *   - says READY=1 once the mount is made, the saved state is recovered and
 *     the control socket listens: a unit ordered After= it (libvirtd) starts
 *     only then, and any request to the mount is answered from then on;
 *   - hands a copy of its /dev/fuse descriptor to the unit's descriptor
 *     store (FDSTORE=1, FDNAME=fuse).  The kernel keeps a FUSE connection,
 *     and so the mount and every descriptor open on it, while any
 *     descriptor of the connection is open: the store keeps the mount
 *     through the end of the daemon's process;
 *   - says STOPPING=1 when it leaves its request loop.
 *
 * A worker's death or a hand-over does not end the service's process (the
 * supervisor keeps the connection and starts another worker).  A connection
 * found in the store at start is one whose supervisor died, and the node
 * ids and file handles it was using went with it: it cannot be taken over,
 * and it is dropped (see svc_drop_stored_connection), which is the manual
 * recovery after a daemon's death done by the unit.
 *
 * svc_drop_stored_connection is called by the supervisor before the first
 * worker starts; svc_ready and svc_stopping by the first worker (the unit
 * has NotifyAccess=all).  None of it blocks for long.
 */
#ifndef RELOCFS_SERVICE_H
#define RELOCFS_SERVICE_H

/* The name under which the FUSE connection is kept in the store. */
#define SVC_FUSE_FDNAME "fuse"

/* Before the mount is looked at.  If the service manager passed a FUSE
 * connection kept from an earlier process of this service (LISTEN_FDS,
 * LISTEN_FDNAMES "fuse"): close it, ask the manager to drop its copy, abort
 * the connection and detach its mount at mnt (only if the topmost mount at
 * mnt, compared as given, is a relocfs one), so that the daemon can mount
 * anew: open files on the old mount fail with ENOTCONN instead of waiting
 * for good for a process that is gone.  Every other passed descriptor is
 * closed.  Logs what it did. */
void svc_drop_stored_connection(const char *mnt);

/* The mount at mnt serves; fuse_fd is the connection to keep in the store
 * (-1: none). */
void svc_ready(const char *mnt, int fuse_fd);

/* The request loop has ended; the mount is going away. */
void svc_stopping(void);

#endif
