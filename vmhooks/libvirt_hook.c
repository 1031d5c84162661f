/*
 * libvirt_hook: the "libvirt:DOMAIN[@URI]" hook, through virsh.
 *
 * "virsh [-c URI] suspend DOMAIN" makes libvirt send QEMU "stop" (which
 * drains and flushes the block devices) and "resume" sends "cont".  Like the
 * qmp hook, it asks "domstate" first and resumes only a domain that it
 * suspended itself: a domain the operator had paused stays paused.
 *
 * Why virsh and not libvirt's C library: no build or link dependency (the
 * daemon and CI need no libvirt-dev), and a hung libvirtd costs a killed
 * child rather than a stuck cutover thread.  The price is a process start per
 * call.
 *
 * DOMAIN@URI splits at the first '@': a domain name holds none, a URI may
 * (qemu+ssh://user@host/system).  RELOCFS_VIRSH names another virsh binary.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "common/log.h"
#include "vmhooks/hook_impl.h"

struct libvirt_hook {
	char *domain;
	char *uri;		/* NULL: virsh's default connection */
	char *virsh;
	bool paused_by_us;
};

static void libvirt_hook_free(void *arg);

static int libvirt_hook_new(const char *arg, void **out, char *err, size_t errlen)
{
	const char *at = strchr(arg, '@');
	const char *virsh = getenv("RELOCFS_VIRSH");
	struct libvirt_hook *lh;

	*out = NULL;
	if (!*arg || at == arg) {
		hook_errf(err, errlen, "libvirt hook needs a domain (libvirt:DOMAIN[@URI])");
		return -EINVAL;
	}
	if (at && !at[1]) {
		hook_errf(err, errlen, "libvirt '%s': empty uri after '@'", arg);
		return -EINVAL;
	}
	lh = calloc(1, sizeof(*lh));
	if (!lh)
		goto out_nomem;
	lh->domain = at ? strndup(arg, (size_t)(at - arg)) : strdup(arg);
	lh->uri = at ? strdup(at + 1) : NULL;
	lh->virsh = strdup(virsh && *virsh ? virsh : "virsh");
	if (!lh->domain || (at && !lh->uri) || !lh->virsh)
		goto out_nomem;
	*out = lh;
	return 0;

out_nomem:
	libvirt_hook_free(lh);
	hook_errf(err, errlen, "libvirt '%s': out of memory", arg);
	return -ENOMEM;
}

static void libvirt_hook_free(void *arg)
{
	struct libvirt_hook *lh = arg;

	if (!lh)
		return;
	free(lh->domain);
	free(lh->uri);
	free(lh->virsh);
	free(lh);
}

/* virsh [-c URI] -q COMMAND DOMAIN; its output in res */
static int virsh(struct libvirt_hook *lh, const char *command, int timeout_ms,
		 struct hook_run_result *res, char *err, size_t errlen)
{
	char *argv[8];
	char tag[300];
	int n = 0, rc;

	argv[n++] = lh->virsh;
	if (lh->uri) {
		argv[n++] = "-c";
		argv[n++] = lh->uri;
	}
	argv[n++] = "-q";
	argv[n++] = (char *)command;
	argv[n++] = lh->domain;
	argv[n] = NULL;
	snprintf(tag, sizeof(tag), "libvirt '%s': %s", lh->domain, command);
	rc = hook_run(tag, argv, NULL, timeout_ms, true, res, err, errlen);
	if (rc < 0)
		return rc;
	if (WIFEXITED(res->status) && WEXITSTATUS(res->status) == 0)
		return 0;
	hook_errf(err, errlen, "libvirt '%s': %s failed: %s", lh->domain, command,
		  res->last_line[0] ? res->last_line : "virsh exited with an error");
	return -EIO;
}

static int libvirt_hook_query(void *arg, char *state, size_t len, int timeout_ms, char *err,
			      size_t errlen)
{
	struct libvirt_hook *lh = arg;
	struct hook_run_result res;
	size_t n;
	int rc;

	rc = virsh(lh, "domstate", timeout_ms, &res, err, errlen);
	if (rc < 0)
		return rc;
	n = strcspn(res.out, "\r\n");
	res.out[n] = '\0';
	if (!n) {
		hook_errf(err, errlen, "libvirt '%s': domstate printed nothing", lh->domain);
		return -EPROTO;
	}
	if (state && len)
		snprintf(state, len, "%s", res.out);
	return 0;
}

static int libvirt_hook_resume(void *arg, int timeout_ms, char *err, size_t errlen);

static int libvirt_hook_pause(void *arg, const struct hook_target *t, int timeout_ms, char *err,
			      size_t errlen)
{
	struct libvirt_hook *lh = arg;
	int64_t deadline = hook_now_ms() + timeout_ms;
	struct hook_run_result res;
	char state[64];
	int rc;

	rc = libvirt_hook_query(lh, state, sizeof(state), timeout_ms, err, errlen);
	if (rc < 0)
		return rc;
	if (strcmp(state, "running") != 0) {
		/* paused by the operator, or by an earlier pause of ours */
		if (!lh->paused_by_us)
			log_info("libvirt '%s': domain is '%s', will leave it so", lh->domain,
				 state);
		return 0;
	}
	/* virsh suspend succeeds only once QEMU has answered "stop", so no
	 * domstate after it: a third virsh run would only lengthen the pause */
	rc = virsh(lh, "suspend", hook_left_ms(deadline), &res, err, errlen);
	if (rc == -EIO)
		return rc;	/* libvirt refused: still running */
	/* suspended, or unknown (timed out): ours to resume either way */
	lh->paused_by_us = true;
	if (rc < 0) {
		char rerr[256];
		int left = hook_left_ms(deadline);

		/* a failed pause leaves the domain running (a little past the
		 * deadline if need be) */
		if (libvirt_hook_resume(lh, left > 2000 ? left : 2000, rerr, sizeof(rerr)) < 0)
			log_warnx("%s", rerr);
		return rc;
	}
	return 0;
}

static int libvirt_hook_resume(void *arg, int timeout_ms, char *err, size_t errlen)
{
	struct libvirt_hook *lh = arg;
	int64_t deadline = hook_now_ms() + timeout_ms;
	struct hook_run_result res;
	char state[64];
	int rc;

	if (!lh->paused_by_us)
		return 0;
	for (;;) {
		rc = virsh(lh, "resume", hook_left_ms(deadline), &res, err, errlen);
		if (rc == -EIO && libvirt_hook_query(lh, state, sizeof(state),
						     hook_left_ms(deadline), NULL, 0) == 0 &&
		    strcmp(state, "running") == 0)
			rc = 0;	/* somebody resumed it already */
		if (rc == 0) {
			lh->paused_by_us = false;
			return 0;
		}
		if (rc != -EIO || hook_left_ms(deadline) <= 100)
			return rc;
		log_warnx("%s, retrying", err);
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static void libvirt_hook_adopt(void *arg, const struct hook_target *t)
{
	struct libvirt_hook *lh = arg;

	lh->paused_by_us = true;
}

const struct hook_ops libvirt_hook_ops = {
	.prefix = "libvirt:",
	.create = libvirt_hook_new,
	.destroy = libvirt_hook_free,
	.pause = libvirt_hook_pause,
	.resume = libvirt_hook_resume,
	.query = libvirt_hook_query,
	.adopt = libvirt_hook_adopt,
};
