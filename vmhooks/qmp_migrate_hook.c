/*
 * qmp_migrate_hook: "qmp-migrate:SOCKET@URI", the hand-off of a VM to
 * another host through QEMU's own migration (vmhook.h, "Hand-off").
 *
 * pause:  turn on the migration capabilities "events" and
 *         "pause-before-switchover", run "migrate" to URI, and wait (the
 *         guest runs, QEMU copies its memory) until QEMU reports
 *         "pre-switchover": the guest is stopped, QEMU has drained and
 *         flushed its disks, and the destination has nothing it could run
 *         the guest with.  Anything else (the migration failed, the time
 *         ran out) cancels the migration: the guest runs on at the source.
 * resume: "migrate-continue" from "pre-switchover", then wait until QEMU
 *         says "completed" (the destination runs the guest) or "failed" /
 *         "cancelled" (QEMU restarted the guest at the source).
 * cancel: "migrate_cancel" while the migration is under way, and wait until
 *         QEMU says it ended; a guest the migration had stopped is running
 *         again (QEMU restarts it; "cont" if it did not).
 *
 * Both resume and cancel first ask QEMU where the migration stands
 * (query-migrate), so that a daemon restarted in the middle of a hand-off
 * can finish or cancel it with a hook made afresh from the recorded spec.
 * The migration's state is followed through its MIGRATION events, with a
 * query-migrate every second in case an event was missed (a connection
 * made after it was sent).  Not done here: postcopy, multifd and other
 * capabilities (QEMU's defaults apply; set them on the source with your own
 * QMP connection before the cutover, and on the destination as QEMU needs),
 * TLS (give QEMU's own migration parameters).
 *
 * When a hand-off ends either way, pause-before-switchover is turned off
 * again, so that a later migration started by someone else does not stop
 * at a switch-over point nobody continues.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "common/crashpoint.h"
#include "common/log.h"
#include "vmhooks/hook_impl.h"
#include "vmhooks/qmp.h"

#define POLL_MS 1000	/* query-migrate at least this often while waiting */
#define FIGURES_TRIES	40	/* query-migrate for the times after "completed", */
#define FIGURES_WAIT_MS	50	/* this far apart */

struct qmpm_hook {
	char *path;		/* QEMU's QMP socket at the source */
	char *uri;		/* where QEMU migrates to, as "migrate" takes it */
	struct qmp *conn;
	bool at_switchover;	/* pause reached pre-switchover */
	bool was_running;	/* the guest ran when pause began */
	char vm[128];		/* QEMU's -name, "" if none */
	long downtime_ms;	/* query-migrate's, -1 unknown */
	long total_ms;		/* query-migrate's total-time, -1 unknown */
	char status[32];	/* the last migration state seen */
};

static const char *const uri_schemes[] = { "tcp:", "unix:", "rdma:", "exec:", "fd:", "vsock:" };

static bool is_uri(const char *s)
{
	for (size_t i = 0; i < sizeof(uri_schemes) / sizeof(uri_schemes[0]); i++)
		if (!strncmp(s, uri_schemes[i], strlen(uri_schemes[i])) && s[strlen(uri_schemes[i])])
			return true;
	return false;
}

static int qmpm_new(const char *arg, void **out, char *err, size_t errlen)
{
	struct qmpm_hook *h;
	const char *at = NULL;

	*out = NULL;
	/* SOCKET@URI: the first '@' that a migration URI follows */
	for (const char *p = strchr(arg, '@'); p; p = strchr(p + 1, '@'))
		if (is_uri(p + 1)) {
			at = p;
			break;
		}
	if (!at || at == arg) {
		hook_errf(err, errlen, "qmp-migrate '%s': expected SOCKET@URI, URI as QEMU's "
			  "migrate takes it (tcp:HOST:PORT, unix:PATH, ...)", arg);
		return -EINVAL;
	}
	if ((size_t)(at - arg) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		hook_errf(err, errlen, "qmp-migrate '%s': socket path too long", arg);
		return -ENAMETOOLONG;
	}
	h = calloc(1, sizeof(*h));
	if (!h || !(h->path = strndup(arg, (size_t)(at - arg))) || !(h->uri = strdup(at + 1))) {
		if (h)
			free(h->path);
		free(h);
		hook_errf(err, errlen, "qmp-migrate '%s': out of memory", arg);
		return -ENOMEM;
	}
	h->downtime_ms = h->total_ms = -1;
	snprintf(h->status, sizeof(h->status), "none");
	*out = h;
	return 0;
}

static void qmpm_free(void *arg)
{
	struct qmpm_hook *h = arg;

	if (!h)
		return;
	qmp_close(h->conn);
	free(h->path);
	free(h->uri);
	free(h);
}

static void qmpm_drop(struct qmpm_hook *h)
{
	qmp_close(h->conn);
	h->conn = NULL;
}

static int qmpm_connect(struct qmpm_hook *h, int timeout_ms, char *err, size_t errlen)
{
	if (h->conn)
		return 0;
	return qmp_open(h->path, timeout_ms, &h->conn, err, errlen);
}

/* A command failed: keep the connection only if QEMU merely said no. */
static void qmpm_after_error(struct qmpm_hook *h, int rc)
{
	if (rc != -EIO && rc != -ENOTSUP)
		qmpm_drop(h);
}

/* query-migrate: the state into h->status, and the figures QEMU gives;
 * desc (may be NULL) gets QEMU's error-desc of a failed migration. */
static int query_migrate(struct qmpm_hook *h, char *desc, size_t dlen, int timeout_ms, char *err,
			 size_t errlen)
{
	json_t *ret = NULL, *v;
	int rc = qmp_execute(h->conn, "query-migrate", NULL, &ret, timeout_ms, err, errlen);

	if (rc < 0) {
		qmpm_after_error(h, rc);
		return rc;
	}
	v = json_object_get(ret, "status");
	/* no migration ever ran: QEMU answers {} */
	snprintf(h->status, sizeof(h->status), "%s", json_is_string(v) ? json_string_value(v) : "none");
	if (json_is_integer(v = json_object_get(ret, "downtime")))
		h->downtime_ms = (long)json_integer_value(v);
	if (json_is_integer(v = json_object_get(ret, "total-time")))
		h->total_ms = (long)json_integer_value(v);
	if (desc && dlen) {
		v = json_object_get(ret, "error-desc");
		snprintf(desc, dlen, "%s", json_is_string(v) ? json_string_value(v) : "no reason given");
	}
	json_decref(ret);
	return 0;
}

/* Has the migration ended, one way or the other? */
static bool ended(const char *status)
{
	return !strcmp(status, "completed") || !strcmp(status, "failed") ||
	       !strcmp(status, "cancelled") || !strcmp(status, "none");
}

/*
 * Wait until the migration reaches one of the states in want (a
 * '|'-separated list) or ends; the state is left in h->status.  Follows the
 * MIGRATION events and asks query-migrate every POLL_MS.
 */
static int wait_state(struct qmpm_hook *h, const char *want, int64_t deadline, char *err,
		      size_t errlen)
{
	char pattern[96];
	int rc;

	snprintf(pattern, sizeof(pattern), "|%s|", want);
	for (;;) {
		char key[40];
		json_t *ev = NULL;
		int left;

		snprintf(key, sizeof(key), "|%s|", h->status);
		if (strstr(pattern, key) || ended(h->status))
			return 0;
		left = hook_left_ms(deadline);
		if (left <= 0) {
			hook_errf(err, errlen, "qmp-migrate '%s': the migration to '%s' is still '%s' "
				  "after the time allowed", h->path, h->uri, h->status);
			return -ETIMEDOUT;
		}
		rc = qmp_next_event(h->conn, left < POLL_MS ? left : POLL_MS, &ev, err, errlen);
		if (rc == -ETIMEDOUT) {
			rc = query_migrate(h, NULL, 0, hook_left_ms(deadline) + 1000, err, errlen);
			if (rc < 0)
				return rc;
			continue;
		}
		if (rc < 0) {
			qmpm_drop(h);
			return rc;
		}
		{
			const char *name = json_string_value(json_object_get(ev, "event"));
			json_t *st = json_object_get(json_object_get(ev, "data"), "status");

			if (name && !strcmp(name, "MIGRATION") && json_is_string(st)) {
				snprintf(h->status, sizeof(h->status), "%s", json_string_value(st));
				log_debug("qmp-migrate '%s': migration %s", h->path, h->status);
			}
		}
		json_decref(ev);
	}
}

static int set_caps(struct qmpm_hook *h, bool on, int timeout_ms, char *err, size_t errlen)
{
	json_t *args = json_pack("{s:[{s:s, s:b}, {s:s, s:b}]}", "capabilities",
				 "capability", "events", "state", 1,
				 "capability", "pause-before-switchover", "state", on);
	int rc;

	if (!args) {
		hook_errf(err, errlen, "qmp-migrate '%s': out of memory", h->path);
		return -ENOMEM;
	}
	rc = qmp_execute(h->conn, "migrate-set-capabilities", args, NULL, timeout_ms, err, errlen);
	json_decref(args);
	if (rc < 0)
		qmpm_after_error(h, rc);
	return rc;
}

/* the hand-off is over, either way: a later migration must not stop at a
 * switch-over point nobody continues */
static void caps_off(struct qmpm_hook *h)
{
	char e[256];

	if (h->conn && set_caps(h, false, 2000, e, sizeof(e)) < 0)
		log_warnx("qmp-migrate '%s': cannot turn pause-before-switchover off again: %s",
			  h->path, e);
}

static int qmpm_cancel(void *arg, int timeout_ms, char *err, size_t errlen);

static int qmpm_pause(void *arg, const struct hook_target *t, int timeout_ms, char *err,
		      size_t errlen)
{
	struct qmpm_hook *h = arg;
	int64_t deadline = hook_now_ms() + timeout_ms;
	char desc[256];
	json_t *ret = NULL, *args;
	bool running;
	int rc;

	rc = qmpm_connect(h, timeout_ms, err, errlen);
	if (rc < 0)
		return rc;
	rc = qmp_query_status(h->conn, &running, NULL, 0, hook_left_ms(deadline), err, errlen);
	if (rc < 0)
		goto out_error;
	h->was_running = running;
	if (qmp_execute(h->conn, "query-name", NULL, &ret, hook_left_ms(deadline), NULL, 0) == 0) {
		const char *n = json_string_value(json_object_get(ret, "name"));

		snprintf(h->vm, sizeof(h->vm), "%s", n ? n : "");
		json_decref(ret);
	}
	rc = query_migrate(h, NULL, 0, hook_left_ms(deadline), err, errlen);
	if (rc < 0)
		return rc;
	if (!ended(h->status)) {
		hook_errf(err, errlen, "qmp-migrate '%s': a migration of this vm is already under "
			  "way (%s)", h->path, h->status);
		return -EBUSY;
	}
	rc = set_caps(h, true, hook_left_ms(deadline), err, errlen);
	if (rc < 0)
		return rc;
	args = json_pack("{s:s}", "uri", h->uri);
	if (!args) {
		hook_errf(err, errlen, "qmp-migrate '%s': out of memory", h->path);
		return -ENOMEM;
	}
	rc = qmp_execute(h->conn, "migrate", args, NULL, hook_left_ms(deadline), err, errlen);
	json_decref(args);
	if (rc < 0) {
		qmpm_after_error(h, rc);
		caps_off(h);
		return rc;
	}
	log_info("qmp-migrate '%s': migrating the vm%s%s%s to '%s'", h->path, h->vm[0] ? " '" : "",
		 h->vm, h->vm[0] ? "'" : "", h->uri);
	snprintf(h->status, sizeof(h->status), "setup");
	rc = wait_state(h, "pre-switchover", deadline, err, errlen);
	if (rc == 0 && !strcmp(h->status, "pre-switchover")) {
		h->at_switchover = true;
		return 0;
	}
	if (rc == 0) {
		/* ended without reaching the switch-over point */
		if (h->conn)
			query_migrate(h, desc, sizeof(desc), 2000, NULL, 0);
		else
			snprintf(desc, sizeof(desc), "no reason given");
		hook_errf(err, errlen, "qmp-migrate '%s': the migration to '%s' %s: %s", h->path,
			  h->uri, h->status, desc);
		caps_off(h);
		return -ECANCELED;
	}
	/* timed out, or the connection broke: do not leave it running */
	{
		char cerr[256];
		int left = hook_left_ms(deadline);

		if (qmpm_cancel(h, left > 10000 ? left : 10000, cerr, sizeof(cerr)) < 0)
			log_warnx("%s", cerr);
	}
	return rc;

out_error:
	qmpm_after_error(h, rc);
	return rc;
}

static int qmpm_resume(void *arg, int timeout_ms, char *err, size_t errlen)
{
	struct qmpm_hook *h = arg;
	int64_t deadline = hook_now_ms() + timeout_ms;
	char desc[256];
	int rc;

	rc = qmpm_connect(h, timeout_ms, err, errlen);
	if (rc < 0)
		return rc;
	rc = query_migrate(h, NULL, 0, hook_left_ms(deadline), err, errlen);
	if (rc < 0)
		return rc;
	if (!strcmp(h->status, "pre-switchover")) {
		json_t *args = json_pack("{s:s}", "state", "pre-switchover");

		rc = qmp_execute(h->conn, "migrate-continue", args, NULL, hook_left_ms(deadline), err,
				 errlen);
		json_decref(args);
		if (rc < 0) {
			qmpm_after_error(h, rc);
			return rc;
		}
		crashpoint("handoff-continued");
		snprintf(h->status, sizeof(h->status), "device");
	}
	rc = wait_state(h, "completed", deadline, err, errlen);
	if (rc < 0)
		return rc;
	query_migrate(h, desc, sizeof(desc), hook_left_ms(deadline) + 1000, NULL, 0);
	/* QEMU reports "completed" a moment before it has worked out the
	 * migration's times: until then query-migrate gives a total time and
	 * a downtime of 0.  Ask again for a while rather than report them. */
	for (int i = 0; i < FIGURES_TRIES && !strcmp(h->status, "completed") && h->total_ms <= 0;
	     i++) {
		nanosleep(&(struct timespec){ .tv_nsec = FIGURES_WAIT_MS * 1000000L }, NULL);
		query_migrate(h, desc, sizeof(desc), 2000, NULL, 0);
	}
	if (!strcmp(h->status, "completed") && h->total_ms <= 0)
		h->downtime_ms = -1;	/* not known: not 0 */
	h->at_switchover = false;
	if (!strcmp(h->status, "completed")) {
		caps_off(h);
		log_info("qmp-migrate '%s': the vm runs at '%s' (qemu downtime %ld ms)", h->path,
			 h->uri, h->downtime_ms);
		return 0;
	}
	if (!strcmp(h->status, "none")) {
		hook_errf(err, errlen, "qmp-migrate '%s': qemu knows of no migration (was it "
			  "restarted?)", h->path);
		return -ENOENT;
	}
	caps_off(h);
	hook_errf(err, errlen, "qmp-migrate '%s': the migration to '%s' %s after the switch-over "
		  "point: %s", h->path, h->uri, h->status, desc);
	return -ECANCELED;
}

static int qmpm_cancel(void *arg, int timeout_ms, char *err, size_t errlen)
{
	struct qmpm_hook *h = arg;
	int64_t deadline = hook_now_ms() + timeout_ms;
	bool running = false;
	int rc;

	rc = qmpm_connect(h, timeout_ms, err, errlen);
	if (rc < 0)
		return rc;
	rc = query_migrate(h, NULL, 0, hook_left_ms(deadline), err, errlen);
	if (rc < 0)
		return rc;
	if (!ended(h->status)) {
		rc = qmp_execute(h->conn, "migrate_cancel", NULL, NULL, hook_left_ms(deadline), err,
				 errlen);
		if (rc < 0) {
			qmpm_after_error(h, rc);
			return rc;
		}
		rc = wait_state(h, "cancelled", deadline, err, errlen);
		if (rc < 0)
			return rc;
	}
	h->at_switchover = false;
	if (!strcmp(h->status, "completed")) {
		hook_errf(err, errlen, "qmp-migrate '%s': the migration to '%s' had completed: the "
			  "vm runs there", h->path, h->uri);
		return -EALREADY;
	}
	caps_off(h);
	/* QEMU restarts a guest that ran before the migration stopped it (a
	 * hook made afresh after a restart leaves that to QEMU) */
	if (!h->was_running)
		return 0;
	rc = qmp_query_status(h->conn, &running, NULL, 0, hook_left_ms(deadline), err, errlen);
	if (rc == 0 && !running)
		rc = qmp_execute(h->conn, "cont", NULL, NULL, hook_left_ms(deadline), err, errlen);
	if (rc < 0)
		qmpm_after_error(h, rc);
	return rc;
}

static int qmpm_migration(void *arg, char *buf, size_t len, int timeout_ms, char *err,
			  size_t errlen)
{
	struct qmpm_hook *h = arg;
	int rc = qmpm_connect(h, timeout_ms, err, errlen);

	if (rc == 0)
		rc = query_migrate(h, NULL, 0, timeout_ms, err, errlen);
	if (rc == 0)
		snprintf(buf, len, "%s", h->status);
	return rc;
}

/* collect image.filename of a query-block "image" and its backing chain */
static int add_images(json_t *img, char ***paths, size_t *n)
{
	for (; json_is_object(img); img = json_object_get(img, "backing-image")) {
		const char *f = json_string_value(json_object_get(img, "filename"));
		char **np;

		if (!f || f[0] != '/')
			continue;	/* json:{...} and network images are not files */
		np = realloc(*paths, (*n + 1) * sizeof(*np));
		if (!np)
			return -ENOMEM;
		*paths = np;
		if (!(np[*n] = strdup(f)))
			return -ENOMEM;
		(*n)++;
	}
	return 0;
}

static int qmpm_disks(void *arg, char ***paths, size_t *n, int timeout_ms, char *err,
		      size_t errlen)
{
	struct qmpm_hook *h = arg;
	json_t *ret = NULL, *dev;
	size_t i;
	int rc = qmpm_connect(h, timeout_ms, err, errlen);

	if (rc < 0)
		return rc;
	rc = qmp_execute(h->conn, "query-block", NULL, &ret, timeout_ms, err, errlen);
	if (rc < 0) {
		qmpm_after_error(h, rc);
		return rc;
	}
	json_array_foreach(ret, i, dev) {
		json_t *ins = json_object_get(dev, "inserted");

		if (ins && (rc = add_images(json_object_get(ins, "image"), paths, n)) < 0)
			break;
	}
	json_decref(ret);
	if (rc < 0)
		hook_errf(err, errlen, "qmp-migrate '%s': out of memory", h->path);
	return rc;
}

static void qmpm_describe(void *arg, char *buf, size_t len)
{
	struct qmpm_hook *h = arg;
	int o = 0;

	if (h->vm[0])
		o = snprintf(buf, len, "vm '%s' ", h->vm);
	if (o < 0 || (size_t)o >= len)
		return;
	if (h->downtime_ms >= 0)
		snprintf(buf + o, len - (size_t)o, "migrated to '%s' in %.1f s, qemu downtime %ld ms",
			 h->uri, (double)h->total_ms / 1000.0, h->downtime_ms);
	else
		snprintf(buf + o, len - (size_t)o, "migrating to '%s' (%s)", h->uri, h->status);
}

static void qmpm_vm_name(void *arg, char *buf, size_t len)
{
	struct qmpm_hook *h = arg;

	snprintf(buf, len, "%s", h->vm);
}

const struct hook_ops qmp_migrate_hook_ops = {
	.prefix = "qmp-migrate:",
	.create = qmpm_new,
	.destroy = qmpm_free,
	.pause = qmpm_pause,
	.resume = qmpm_resume,
	.hands_off = true,
	.cancel = qmpm_cancel,
	.disks = qmpm_disks,
	.migration = qmpm_migration,
	.describe = qmpm_describe,
	.vm_name = qmpm_vm_name,
};
