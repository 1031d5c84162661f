/*
 * qmp: the QMP client (see qmp.h for the protocol).
 *
 * Not done here: QMP out-of-band commands, pretty-printed (multi-line) QMP
 * output, more than one command in flight, TCP sockets.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "vmhooks/hook_impl.h"
#include "vmhooks/qmp.h"

#define QMP_LINE_MAX	(1u << 20)	/* longest line accepted from QEMU */
#define QMP_EVENTS_MAX	64		/* events kept for qmp_next_event */

struct qmp {
	int fd;
	char *name;		/* socket path, for messages */
	unsigned next_id;
	unsigned events;	/* events seen */
	json_t *evq;		/* events not yet taken by qmp_next_event, oldest
				 * first; the oldest is dropped beyond QMP_EVENTS_MAX */
	char *buf;		/* bytes read but not yet consumed */
	size_t len, cap;
};

/* ---------------------------------------------------------------- client */

static int qmp_fail(struct qmp *q, int rc, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int qmp_fail(struct qmp *q, int rc, char *err, size_t errlen, const char *fmt, ...)
{
	char msg[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	hook_errf(err, errlen, "qmp '%s': %s", q ? q->name : "?", msg);
	return rc;
}

static struct qmp *qmp_alloc(int fd, const char *name)
{
	struct qmp *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->name = strdup(name);
	q->cap = 4096;
	q->buf = malloc(q->cap);
	if (!q->name || !q->buf) {
		free(q->name);
		free(q->buf);
		free(q);
		return NULL;
	}
	q->evq = json_array();
	if (!q->evq) {
		free(q->name);
		free(q->buf);
		free(q);
		return NULL;
	}
	q->fd = fd;
	q->next_id = 1;
	return q;
}

void qmp_close(struct qmp *q)
{
	if (!q)
		return;
	if (q->fd >= 0)
		close(q->fd);
	json_decref(q->evq);
	free(q->buf);
	free(q->name);
	free(q);
}

unsigned qmp_events_seen(const struct qmp *q)
{
	return q->events;
}

/*
 * Take one complete line out of q->buf, reading more as needed.  Returns the
 * line (NUL-terminated, without the '\n', owned by the caller) or NULL with
 * *rc set.  what names the awaited reply for messages.
 */
static char *qmp_read_line(struct qmp *q, int64_t deadline, const char *what, int *rc,
			   char *err, size_t errlen)
{
	for (;;) {
		char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;

		if (nl) {
			size_t n = (size_t)(nl - q->buf);
			char *line = malloc(n + 1);

			if (!line) {
				*rc = qmp_fail(q, -ENOMEM, err, errlen, "out of memory");
				return NULL;
			}
			memcpy(line, q->buf, n);
			line[n] = '\0';
			memmove(q->buf, nl + 1, q->len - n - 1);
			q->len -= n + 1;
			return line;
		}
		if (q->len >= QMP_LINE_MAX) {
			*rc = qmp_fail(q, -EPROTO, err, errlen, "line longer than %u bytes",
				       QMP_LINE_MAX);
			return NULL;
		}
		if (q->cap - q->len < 4096) {
			size_t ncap = q->cap * 2;
			char *nb = realloc(q->buf, ncap);

			if (!nb) {
				*rc = qmp_fail(q, -ENOMEM, err, errlen, "out of memory");
				return NULL;
			}
			q->buf = nb;
			q->cap = ncap;
		}

		struct pollfd pfd = { .fd = q->fd, .events = POLLIN };
		int left = hook_left_ms(deadline);
		int pr = poll(&pfd, 1, left);

		if (pr < 0) {
			if (errno == EINTR)
				continue;
			*rc = qmp_fail(q, -errno, err, errlen, "poll: %s", strerror(errno));
			return NULL;
		}
		if (pr == 0) {
			*rc = qmp_fail(q, -ETIMEDOUT, err, errlen, "timed out waiting for %s", what);
			return NULL;
		}
		ssize_t r = read(q->fd, q->buf + q->len, q->cap - q->len);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			*rc = -errno;
			if (errno == ECONNRESET)
				qmp_fail(q, -ECONNRESET, err, errlen,
					 "connection reset while waiting for %s", what);
			else
				qmp_fail(q, *rc, err, errlen, "read: %s", strerror(errno));
			return NULL;
		}
		if (r == 0) {
			*rc = qmp_fail(q, -ECONNRESET, err, errlen,
				       "connection closed by qemu while waiting for %s", what);
			return NULL;
		}
		q->len += (size_t)r;
	}
}

/*
 * Read the next JSON object, an event or not: returns it (new reference) or
 * NULL with *rc set.  Blank lines are skipped.
 */
static json_t *qmp_read_object(struct qmp *q, int64_t deadline, const char *what, int *rc,
			       char *err, size_t errlen)
{
	for (;;) {
		char *line = qmp_read_line(q, deadline, what, rc, err, errlen);
		json_error_t jerr;
		json_t *msg;
		size_t n;

		if (!line)
			return NULL;
		n = strlen(line);
		while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
			line[--n] = '\0';
		if (n == 0) {
			free(line);
			continue;
		}
		msg = json_loadb(line, n, 0, &jerr);
		if (!msg || !json_is_object(msg)) {
			qmp_fail(q, -EPROTO, err, errlen, "not a json object while waiting for %s: %s",
				 what, msg ? "wrong type" : jerr.text);
			json_decref(msg);
			free(line);
			*rc = -EPROTO;
			return NULL;
		}
		free(line);
		return msg;
	}
}

/* Keep event msg (taken) for qmp_next_event, if it is one: true if it was. */
static bool qmp_keep_event(struct qmp *q, json_t *msg)
{
	const char *ev;

	if (!json_object_get(msg, "event"))
		return false;
	ev = json_string_value(json_object_get(msg, "event"));
	q->events++;
	log_debug("qmp '%s': event %s", q->name, ev ? ev : "?");
	if (json_array_size(q->evq) >= QMP_EVENTS_MAX)
		json_array_remove(q->evq, 0);
	json_array_append_new(q->evq, msg);
	return true;
}

/*
 * Read JSON objects until one that is not an event: returns it (new
 * reference) or NULL with *rc set.  The events read meanwhile are kept.
 */
static json_t *qmp_read_message(struct qmp *q, int64_t deadline, const char *what, int *rc,
				char *err, size_t errlen)
{
	for (;;) {
		json_t *msg = qmp_read_object(q, deadline, what, rc, err, errlen);

		if (!msg || !qmp_keep_event(q, msg))
			return msg;
	}
}

static int qmp_send(struct qmp *q, const char *text, int64_t deadline, const char *what,
		    char *err, size_t errlen)
{
	size_t len = strlen(text), off = 0;

	while (off < len) {
		ssize_t w = send(q->fd, text + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w >= 0) {
			off += (size_t)w;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			struct pollfd pfd = { .fd = q->fd, .events = POLLOUT };
			int pr = poll(&pfd, 1, hook_left_ms(deadline));

			if (pr == 0)
				return qmp_fail(q, -ETIMEDOUT, err, errlen, "timed out sending %s",
						what);
			continue;
		}
		if (errno == EPIPE || errno == ECONNRESET)
			return qmp_fail(q, -ECONNRESET, err, errlen,
					"connection closed by qemu while sending %s", what);
		return qmp_fail(q, -errno, err, errlen, "send: %s", strerror(errno));
	}
	return 0;
}

int qmp_execute(struct qmp *q, const char *command, json_t *args, json_t **ret,
		int timeout_ms, char *err, size_t errlen)
{
	int64_t deadline = hook_now_ms() + timeout_ms;
	unsigned id = q->next_id++;
	char what[96];
	json_t *req, *msg = NULL;
	char *text;
	int rc;

	if (ret)
		*ret = NULL;
	snprintf(what, sizeof(what), "reply to '%s'", command);
	req = json_pack("{s:s, s:I}", "execute", command, "id", (json_int_t)id);
	if (!req)
		return qmp_fail(q, -ENOMEM, err, errlen, "out of memory");
	if (args && json_object_set(req, "arguments", args) < 0) {
		json_decref(req);
		return qmp_fail(q, -ENOMEM, err, errlen, "out of memory");
	}
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!text)
		return qmp_fail(q, -ENOMEM, err, errlen, "out of memory");
	/* QEMU's parser needs no newline, but a line makes its trace readable */
	size_t tl = strlen(text);
	char *line = realloc(text, tl + 2);
	if (!line) {
		free(text);
		return qmp_fail(q, -ENOMEM, err, errlen, "out of memory");
	}
	line[tl] = '\n';
	line[tl + 1] = '\0';
	rc = qmp_send(q, line, deadline, command, err, errlen);
	free(line);
	if (rc < 0)
		return rc;

	for (;;) {
		json_t *jid;

		msg = qmp_read_message(q, deadline, what, &rc, err, errlen);
		if (!msg)
			return rc;
		jid = json_object_get(msg, "id");
		/* QEMU answers a request it could not parse without an id; with one
		 * command in flight that answer is ours */
		if (jid && !(json_is_integer(jid) && json_integer_value(jid) == (json_int_t)id)) {
			log_debug("qmp '%s': skipping reply with stale id", q->name);
			json_decref(msg);
			continue;
		}
		break;
	}

	json_t *jerr = json_object_get(msg, "error");
	json_t *jret = json_object_get(msg, "return");
	if (jerr) {
		const char *cls = json_string_value(json_object_get(jerr, "class"));
		const char *desc = json_string_value(json_object_get(jerr, "desc"));

		rc = (cls && strcmp(cls, "CommandNotFound") == 0) ? -ENOTSUP : -EIO;
		qmp_fail(q, rc, err, errlen, "%s: %s", command, desc ? desc : (cls ? cls : "error"));
		json_decref(msg);
		return rc;
	}
	if (!jret) {
		json_decref(msg);
		return qmp_fail(q, -EPROTO, err, errlen, "%s: reply has neither return nor error",
				command);
	}
	if (ret)
		*ret = json_incref(jret);
	json_decref(msg);
	return 0;
}

int qmp_next_event(struct qmp *q, int timeout_ms, json_t **ev, char *err, size_t errlen)
{
	int64_t deadline = hook_now_ms() + timeout_ms;

	*ev = NULL;
	while (json_array_size(q->evq) == 0) {
		json_t *msg;
		int rc;

		if (hook_left_ms(deadline) <= 0)
			return -ETIMEDOUT;
		/* an event is returned the moment it is read */
		msg = qmp_read_object(q, deadline, "an event", &rc, err, errlen);
		if (!msg)
			return rc;
		if (qmp_keep_event(q, msg))
			continue;
		/* no command is in flight: a late reply to one that timed out */
		log_debug("qmp '%s': skipping a reply while waiting for an event", q->name);
		json_decref(msg);
	}
	*ev = json_incref(json_array_get(q->evq, 0));
	json_array_remove(q->evq, 0);
	return 0;
}

int qmp_query_status(struct qmp *q, bool *running, char *status, size_t len,
		     int timeout_ms, char *err, size_t errlen)
{
	json_t *ret = NULL, *jrun;
	const char *st;
	int rc;

	rc = qmp_execute(q, "query-status", NULL, &ret, timeout_ms, err, errlen);
	if (rc < 0)
		return rc;
	jrun = json_object_get(ret, "running");
	st = json_string_value(json_object_get(ret, "status"));
	if (!json_is_boolean(jrun)) {
		json_decref(ret);
		return qmp_fail(q, -EPROTO, err, errlen, "query-status: reply lacks 'running'");
	}
	if (running)
		*running = json_is_true(jrun);
	if (status && len)
		snprintf(status, len, "%s", st ? st : (json_is_true(jrun) ? "running" : "paused"));
	json_decref(ret);
	return 0;
}

int qmp_open_fd(int fd, const char *name, int timeout_ms, struct qmp **out, char *err,
		size_t errlen)
{
	int64_t deadline = hook_now_ms() + timeout_ms;
	struct qmp *q;
	json_t *greet;
	int rc, fl;

	*out = NULL;
	q = qmp_alloc(fd, name);
	if (!q) {
		close(fd);
		hook_errf(err, errlen, "qmp '%s': out of memory", name);
		return -ENOMEM;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);

	greet = qmp_read_message(q, deadline,
				 "greeting (is another client connected?)", &rc, err, errlen);
	if (!greet)
		goto out_close;
	if (!json_is_object(json_object_get(greet, "QMP"))) {
		json_decref(greet);
		rc = qmp_fail(q, -EPROTO, err, errlen, "no qmp greeting");
		goto out_close;
	}
	json_decref(greet);
	rc = qmp_execute(q, "qmp_capabilities", NULL, NULL, hook_left_ms(deadline), err, errlen);
	if (rc < 0)
		goto out_close;
	*out = q;
	return 0;

out_close:
	qmp_close(q);
	return rc;
}

int qmp_open(const char *socket_path, int timeout_ms, struct qmp **out, char *err,
	     size_t errlen)
{
	int64_t deadline = hook_now_ms() + timeout_ms;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, rc;

	*out = NULL;
	if (strlen(socket_path) >= sizeof(sun.sun_path)) {
		hook_errf(err, errlen, "qmp '%s': socket path too long", socket_path);
		return -ENAMETOOLONG;
	}
	strcpy(sun.sun_path, socket_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		hook_errf(err, errlen, "qmp '%s': socket: %s", socket_path, strerror(errno));
		return rc;
	}
	for (;;) {
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EINPROGRESS) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			int soerr = 0;
			socklen_t sl = sizeof(soerr);

			if (poll(&pfd, 1, hook_left_ms(deadline)) == 0) {
				errno = ETIMEDOUT;
				goto out_fail;
			}
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
				goto out_fail;
			if (soerr) {
				errno = soerr;
				goto out_fail;
			}
			break;
		}
		/* a UNIX listener with a full backlog says EAGAIN: try again shortly */
		if (errno == EAGAIN && hook_left_ms(deadline) > 0) {
			struct timespec ts = { 0, 5 * 1000 * 1000 };
			nanosleep(&ts, NULL);
			continue;
		}
		if (errno == EAGAIN)
			errno = ETIMEDOUT;
		goto out_fail;
	}
	return qmp_open_fd(fd, socket_path, hook_left_ms(deadline), out, err, errlen);

out_fail:
	rc = -errno;
	hook_errf(err, errlen, "qmp '%s': cannot connect: %s", socket_path, strerror(errno));
	close(fd);
	return rc;
}
