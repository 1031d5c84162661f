/*
 * qmp_hook: the "qmp:SOCKET" and "qmp-rbd:SOCKET" hooks, on the QMP client
 * (qmp.h).  They differ only in the hand-over, which qmp-rbd does with the
 * connection its pause left open (qmp_rbd.c).
 *
 * The hook pauses with "stop" and confirms with "query-status" that the VM no
 * longer runs (QEMU drains and flushes every block device before it answers
 * "stop").  It remembers whether it was the one that stopped the VM: a VM the
 * operator had paused before the cutover stays paused afterwards.  Between
 * pause and resume the connection stays open, so that resuming costs one
 * round trip and not a reconnect; if it broke meanwhile, resume reconnects.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "common/log.h"
#include "vmhooks/hook_impl.h"
#include "vmhooks/qmp.h"
#include "vmhooks/qmp_rbd.h"

struct qmp_hook {
	char *path;
	struct qmp *conn;	/* open from pause to resume, NULL otherwise */
	bool paused_by_us;	/* we sent "stop" to a running VM; resume sends "cont" */
};

static int qmp_hook_new(const char *socket_path, void **out, char *err, size_t errlen)
{
	struct qmp_hook *qh;

	*out = NULL;
	if (!*socket_path) {
		hook_errf(err, errlen, "qmp hook needs a socket path (qmp:SOCKET, qmp-rbd:SOCKET)");
		return -EINVAL;
	}
	if (strlen(socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		hook_errf(err, errlen, "qmp '%s': socket path too long", socket_path);
		return -ENAMETOOLONG;
	}
	qh = calloc(1, sizeof(*qh));
	if (!qh || !(qh->path = strdup(socket_path))) {
		free(qh);
		hook_errf(err, errlen, "qmp '%s': out of memory", socket_path);
		return -ENOMEM;
	}
	*out = qh;
	return 0;
}

static void qmp_hook_free(void *arg)
{
	struct qmp_hook *qh = arg;

	if (!qh)
		return;
	qmp_close(qh->conn);
	free(qh->path);
	free(qh);
}

static int qmp_hook_resume(void *arg, int timeout_ms, char *err, size_t errlen);

static void qmp_hook_drop(struct qmp_hook *qh)
{
	qmp_close(qh->conn);
	qh->conn = NULL;
}

static int qmp_hook_connect(struct qmp_hook *qh, int timeout_ms, char *err, size_t errlen)
{
	if (qh->conn)
		return 0;
	return qmp_open(qh->path, timeout_ms, &qh->conn, err, errlen);
}

/* A command failed: keep the connection only if QEMU merely said no. */
static void qmp_hook_after_error(struct qmp_hook *qh, int rc)
{
	if (rc != -EIO && rc != -ENOTSUP)
		qmp_hook_drop(qh);
}

static int qmp_hook_pause(void *arg, const struct hook_target *t, int timeout_ms, char *err,
			  size_t errlen)
{
	struct qmp_hook *qh = arg;
	int64_t deadline = hook_now_ms() + timeout_ms;
	char status[32];
	bool running;
	int rc;

	rc = qmp_hook_connect(qh, timeout_ms, err, errlen);
	if (rc < 0)
		return rc;
	rc = qmp_query_status(qh->conn, &running, status, sizeof(status),
			      hook_left_ms(deadline), err, errlen);
	if (rc < 0)
		goto out_error;
	if (!running) {
		/* paused by the operator (or stopped for another reason): not ours
		 * to resume.  QEMU drained the devices when it stopped the VM. */
		if (!qh->paused_by_us)
			log_info("qmp '%s': vm already not running (%s), will leave it so",
				 qh->path, status);
		return 0;
	}
	/* A window remains: an operator who stops the VM between our
	 * query-status and our stop will see it resumed after the cutover. */
	rc = qmp_execute(qh->conn, "stop", NULL, NULL, hook_left_ms(deadline), err, errlen);
	if (rc == -EIO || rc == -ENOTSUP)
		goto out_error;		/* QEMU refused: the VM still runs */
	/* from here on the VM may be stopped even if we saw no reply (a stop
	 * that timed out while QEMU drained completes later): ours to resume */
	qh->paused_by_us = true;
	if (rc < 0) {
		qmp_hook_drop(qh);
		goto out_resume;
	}
	rc = qmp_query_status(qh->conn, &running, status, sizeof(status),
			      hook_left_ms(deadline), err, errlen);
	if (rc < 0)
		goto out_resume;
	if (running) {
		rc = -EAGAIN;
		hook_errf(err, errlen, "qmp '%s': vm still running after stop (%s)", qh->path,
			  status);
		goto out_resume;
	}
	log_debug("qmp '%s': vm paused (%s)", qh->path, status);
	return 0;

out_resume:
	/* the contract: a failed pause leaves the VM running.  This may take us
	 * past timeout_ms (by one second at most when the deadline has passed):
	 * a VM left stopped by a cancelled cutover is the worse outcome. */
	{
		char rerr[256];
		int left = hook_left_ms(deadline);

		if (qmp_hook_resume(qh, left > 1000 ? left : 1000, rerr, sizeof(rerr)) < 0)
			log_warnx("%s", rerr);
	}
	return rc;
out_error:
	qmp_hook_after_error(qh, rc);
	return rc;
}

static int qmp_hook_resume(void *arg, int timeout_ms, char *err, size_t errlen)
{
	struct qmp_hook *qh = arg;
	int64_t deadline = hook_now_ms() + timeout_ms;
	bool running = false;
	int rc;

	if (!qh->paused_by_us) {
		log_debug("qmp '%s': not paused by relocfs, not resuming", qh->path);
		qmp_hook_drop(qh);
		return 0;
	}
	/* retry while the socket is unreachable or drops: a QEMU busy
	 * flushing may accept late, and the old connection may have broken */
	for (;;) {
		rc = qmp_hook_connect(qh, hook_left_ms(deadline), err, errlen);
		if (rc == 0) {
			rc = qmp_execute(qh->conn, "cont", NULL, NULL, hook_left_ms(deadline),
					 err, errlen);
			if (rc == 0)
				rc = qmp_query_status(qh->conn, &running, NULL, 0,
						      hook_left_ms(deadline), err, errlen);
			if (rc == 0 && !running) {
				rc = -EAGAIN;
				hook_errf(err, errlen, "qmp '%s': vm not running after cont",
					  qh->path);
			}
			if (rc == 0) {
				qh->paused_by_us = false;
				qmp_hook_drop(qh);
				return 0;
			}
			qmp_hook_after_error(qh, rc);
		}
		/* no socket or nobody listening: QEMU is gone, nothing to wait for */
		if (rc == -EIO || rc == -ENOTSUP || rc == -ENOENT || rc == -ECONNREFUSED ||
		    rc == -ENAMETOOLONG || hook_left_ms(deadline) <= 0)
			return rc;
		log_debug("qmp '%s': resume failed (%d), retrying", qh->path, rc);
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static int qmp_hook_query(void *arg, char *state, size_t len, int timeout_ms, char *err,
			  size_t errlen)
{
	struct qmp_hook *qh = arg;
	int64_t deadline = hook_now_ms() + timeout_ms;
	bool keep = qh->conn != NULL;
	int rc;

	rc = qmp_hook_connect(qh, timeout_ms, err, errlen);
	if (rc < 0)
		return rc;
	rc = qmp_query_status(qh->conn, NULL, state, len, hook_left_ms(deadline), err, errlen);
	if (rc < 0)
		qmp_hook_after_error(qh, rc);
	/* do not hold QEMU's only QMP connection longer than needed */
	if (!keep)
		qmp_hook_drop(qh);
	return rc;
}

static int qmp_hook_handover(void *arg, const struct vmhook_image *imgs, int n, int timeout_ms,
			     char *err, size_t errlen)
{
	struct qmp_hook *qh = arg;
	int64_t deadline = hook_now_ms() + timeout_ms;
	int rc;

	/* the VM stays paused whether or not it was ours to pause */
	rc = qmp_hook_connect(qh, timeout_ms, err, errlen);
	if (rc < 0)
		return rc;
	rc = qmp_rbd_handover(qh->conn, qh->path, imgs, n, hook_left_ms(deadline), err, errlen);
	if (rc < 0)
		qmp_hook_after_error(qh, rc);
	return rc;
}

static void qmp_hook_adopt(void *arg, const struct hook_target *t)
{
	struct qmp_hook *qh = arg;

	qh->paused_by_us = true;
}

const struct hook_ops qmp_hook_ops = {
	.prefix = "qmp:",
	.create = qmp_hook_new,
	.destroy = qmp_hook_free,
	.pause = qmp_hook_pause,
	.resume = qmp_hook_resume,
	.query = qmp_hook_query,
	.adopt = qmp_hook_adopt,
};

const struct hook_ops qmp_rbd_hook_ops = {
	.prefix = "qmp-rbd:",
	.create = qmp_hook_new,
	.destroy = qmp_hook_free,
	.pause = qmp_hook_pause,
	.resume = qmp_hook_resume,
	.handover = qmp_hook_handover,
	.query = qmp_hook_query,
	.adopt = qmp_hook_adopt,
};
