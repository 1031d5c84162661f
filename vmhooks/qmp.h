/*
 * qmp: a minimal synchronous client for QEMU's machine protocol on a UNIX
 * socket, enough to stop, continue and ask the run state of a VM.
 *
 * Protocol (docs/interop/qmp-spec of QEMU): the server sends a greeting
 * {"QMP": {...}}, the client sends {"execute": "qmp_capabilities"}, then
 * commands {"execute": NAME, "arguments": {...}, "id": N}.  Each command gets
 * exactly one reply {"return": ...} or {"error": {"class", "desc"}} carrying
 * the same id.  Asynchronous events {"event": NAME, ...} may come at any time,
 * before or after a reply; the client keeps the last QMP_EVENTS_MAX of them
 * (qmp.c) for qmp_next_event and otherwise skips them.  The server writes one JSON
 * object per line (QEMU ends lines with "\r\n"), so the client frames on '\n'
 * and parses each line with jansson.
 *
 * One command in flight at a time; a reply whose id is not the current one
 * (a late reply to a command that timed out) is skipped.  QEMU serves one
 * client per QMP socket: while somebody else is connected, the connection is
 * accepted by the kernel but no greeting comes, and qmp_open times out.
 *
 * Every call blocks for at most timeout_ms.  Errors: -errno and one line in
 * err, prefixed "qmp 'SOCKET': ".
 *   -ETIMEDOUT     no complete reply in time
 *   -ECONNRESET    QEMU closed the connection (EOF or reset), e.g. it died
 *   -EPROTO        not QMP (bad JSON, no greeting, reply of the wrong shape)
 *   -EIO           QEMU answered with an error (err holds its "desc")
 *   -ENOTSUP       QEMU does not know the command (class CommandNotFound)
 *   other          from socket(2) / connect(2) / read(2)
 * After an error other than -EIO and -ENOTSUP the connection is unusable:
 * close it and open a new one.
 */
#ifndef RELOCFS_QMP_H
#define RELOCFS_QMP_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct qmp;

/* Connect, read the greeting and negotiate capabilities. */
int qmp_open(const char *socket_path, int timeout_ms, struct qmp **out, char *err,
	     size_t errlen);
/* Same on an already connected stream socket (qmp takes fd over, even on error). */
int qmp_open_fd(int fd, const char *name, int timeout_ms, struct qmp **out, char *err,
		size_t errlen);
void qmp_close(struct qmp *q);

/*
 * Run one command.  args may be NULL (no "arguments"); it is not stolen.
 * On success *ret (if ret is not NULL) holds a new reference to the "return"
 * value, which the caller json_decref()s.
 */
int qmp_execute(struct qmp *q, const char *command, json_t *args, json_t **ret,
		int timeout_ms, char *err, size_t errlen);

/* query-status: whether the VM runs, and its run state ("running", "paused",
 * "io-error", ...) copied into status (may be NULL). */
int qmp_query_status(struct qmp *q, bool *running, char *status, size_t len,
		     int timeout_ms, char *err, size_t errlen);

/* The oldest event not yet taken (a new reference in *ev), reading from
 * QEMU until one comes; -ETIMEDOUT when none came within timeout_ms (0: take
 * only one already read).  Events that arrived while a command waited for
 * its reply are kept, so that none is missed between commands. */
int qmp_next_event(struct qmp *q, int timeout_ms, json_t **ev, char *err, size_t errlen);

/* Number of asynchronous events seen so far (for tests and debug logs). */
unsigned qmp_events_seen(const struct qmp *q);

#endif
