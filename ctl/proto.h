/*
 * proto: the control protocol between relocfs and relocctl.  Both sides
 * include this header and link proto.c, so a request is parsed by exactly
 * one parser, in the daemon and (to reject usage errors early) in relocctl.
 *
 * Transport: a UNIX stream socket, created 0600 by the daemon; the daemon
 * accepts only peers whose SO_PEERCRED uid is its own or root.  One request,
 * one reply, then the daemon closes the connection.
 *
 * Message: struct ctl_hdr (little-endian host order; both ends are on one
 * host) followed by hdr.len bytes of payload.
 *   request payload: argc NUL-terminated strings, the command and its
 *                    arguments exactly as relocctl received them;
 *   reply payload:   text (one line of error, or the command's output; for
 *                    "status --json" a JSON object), status in hdr.status.
 * The daemon checks magic, version, type and length before it reads the
 * payload, and rejects requests over CTL_REQ_MAX.
 */
#ifndef RELOCFS_PROTO_H
#define RELOCFS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTL_MAGIC	0x31434c52u	/* "RLC1" */
#define CTL_VERSION	1
#define CTL_REQ_MAX	(64u << 10)	/* request payload */
#define CTL_REPLY_MAX	(16u << 20)	/* reply payload */
#define CTL_ARGV_MAX	256
#define CTL_FILES_MAX	128
#define CTL_HOOKS_MAX	8
#define CTL_JOB_NAME_MAX	64	/* bytes of a job's name */
#define CTL_PRIORITY_MAX	1000
#define CTL_PARALLEL_MAX	1024
#define CTL_DEADLINE_MAX_S	(366.0 * 86400)
#define CTL_RUNDIR	"/run/relocfs"	/* RELOCFS_RUNDIR overrides */

enum ctl_type { CTL_T_REQUEST = 1, CTL_T_REPLY = 2 };

/* exit codes shared by relocctl and reply status */
enum { CTL_OK = 0, CTL_EFAIL = 1, CTL_EUSAGE = 2 };

struct ctl_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t len;
	int32_t status;
};

enum ctl_cmd {
	CTL_CMD_STATUS = 1,
	CTL_CMD_MIGRATE,
	CTL_CMD_WAIT,
	CTL_CMD_CUTOVER,
	CTL_CMD_ABORT,
	CTL_CMD_VERIFY,
	CTL_CMD_LIMIT,
	CTL_CMD_RESTART,
};

/* A parsed request.  Strings point into the buffer that was parsed. */
struct ctl_request {
	enum ctl_cmd cmd;
	bool json;			/* status */
	bool remove_source;		/* cutover */
	bool force;			/* cutover, abort: settle a hand-off whose end
					 * QEMU cannot tell (ctl/handoff.c) */
	const char *job;		/* --job NAME (every command but limit
					 * --parallel alone); NULL: none given */
	const char *to;			/* migrate: destination directory */
	const char *delta_dir;		/* migrate: where deltas live */
	uint64_t rate;			/* migrate: bytes/s, 0 = default */
	int priority;			/* migrate: weight in the budget; 0 = default */
	double deadline_s;		/* migrate: ready within this; 0 = none */
	bool has_limit;			/* limit: a BYTES_PER_S was given */
	uint64_t limit;			/* limit: bytes/s, 0 = none */
	int parallel;			/* limit: --parallel N; -1 = not given, 0 = no limit */
	double timeout_s;		/* wait, cutover; 0 = none given */
	int max_downtime_ms;		/* cutover; 0 = default */
	const char *exec_path;		/* restart: the new binary; NULL = the same */
	int nfiles;
	const char *files[CTL_FILES_MAX];
	int nhooks;
	const char *hooks[CTL_HOOKS_MAX];
};

/* Validate a header read off the wire for a message of type 'type' whose
 * payload may be at most 'max' bytes.  Returns 0 or -EPROTO / -EMSGSIZE. */
int ctl_hdr_check(const struct ctl_hdr *h, uint16_t type, uint32_t max);

/* Split a request payload into argv.  Every string must be NUL-terminated
 * inside buf[0..len).  Returns argc (>= 1) or -EINVAL. */
int ctl_split_argv(const char *buf, size_t len, const char **argv, int max);

/* Join argv into a payload.  Returns bytes used or -EMSGSIZE. */
int ctl_join_argv(int argc, char *const *argv, char *buf, size_t len);

/* Parse a command line (argv[0] is the command).  On failure returns -EINVAL
 * and writes one line, without newline, to err. */
int ctl_parse_request(int argc, const char **argv, struct ctl_request *req,
		      char *err, size_t errlen);

/* Parse "123", "10M", "1.5G" (powers of 1024) into bytes.  0 on success. */
int ctl_parse_size(const char *s, uint64_t *out);
/* The other way, for people: "512 B", "1.5 MiB" (powers of 1024). */
void ctl_fmt_bytes(double b, char *buf, size_t len);

/* Parse a duration: "90", "90s", "45m", "2h", "1d", or parts in that order
 * ("1h30m").  0 on success, with *out in seconds (> 0, at most
 * CTL_DEADLINE_MAX_S). */
int ctl_parse_duration(const char *s, double *out);

/* A job's name: 1 to CTL_JOB_NAME_MAX bytes of letters, digits and
 * "._-+:@", not starting with '-' or '.'. */
bool ctl_job_name_ok(const char *s);

/* The daemon's socket for a mountpoint given as an absolute, canonical path. */
int ctl_socket_path(const char *mountpoint, char *out, size_t len);

/* Write all / read all, restarting on EINTR; 0 or -errno (-EPIPE on EOF). */
int ctl_write_all(int fd, const void *buf, size_t len);
int ctl_read_all(int fd, void *buf, size_t len);

/* Send one message; receive one (payload malloc'd, NUL-terminated). */
int ctl_send(int fd, uint16_t type, int32_t status, const void *payload, uint32_t len);
int ctl_recv(int fd, uint16_t type, uint32_t max, struct ctl_hdr *h, char **payload);

#endif
