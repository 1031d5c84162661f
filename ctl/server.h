/*
 * server: the daemon's side of the control socket (protocol in proto.h).
 * One listening UNIX socket, created 0600; one thread per connection (at
 * most CTL_MAX_CLIENTS at once, others are told "busy"); peers must be root
 * or the daemon's own uid (SO_PEERCRED).  A client that sends nothing for
 * CTL_IDLE_S seconds is dropped.
 */
#ifndef RELOCFS_CTL_SERVER_H
#define RELOCFS_CTL_SERVER_H

#include <stddef.h>

struct ctl_request;

/* Runs one parsed request: *out a malloc'd reply text, the status returned
 * (CTL_OK, CTL_EFAIL, CTL_EUSAGE).  Called from the connection's thread;
 * several may run at once. */
typedef int (*ctl_handler)(void *arg, const struct ctl_request *req, char **out);

#define CTL_MAX_CLIENTS 16
#define CTL_IDLE_S 10

/* Bind the socket for a mountpoint (canonical path).  Fails with -EADDRINUSE
 * if a live daemon already answers there.  Call before daemonizing. */
int ctl_server_bind(const char *mountpoint, char *err, size_t errlen);

/* Start the accept thread (after daemonizing); requests go to handler. */
int ctl_server_start(ctl_handler handler, void *arg);

/* Close the socket and remove its path. */
void ctl_server_stop(void);

/* For a hand-over to another worker, which serves the same socket: stop
 * accepting, and wait (up to 10 s) until the connections being served have
 * had their replies.  The socket stays. */
void ctl_server_quiesce(void);

/* The listening socket (-1 before bind), and taking one over after the
 * daemon re-executed itself. */
int ctl_server_fd(void);
void ctl_server_adopt(int fd, const char *mountpoint);

#endif
