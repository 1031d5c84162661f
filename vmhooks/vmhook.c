/*
 * vmhook: parses "--hook SPEC", picks the back end's table of operations by
 * the spec's prefix (hook_impl.h), and dispatches through it.  "freeze" and
 * "none" are tables whose pause and resume do nothing here: the daemon's own
 * I/O hold is the daemon's business, not a hook's.
 *
 * Paths in specs (the QMP socket, the exec program) must be absolute, or for
 * exec a bare name looked up in PATH: the daemon runs with "/" as its working
 * directory, not relocctl's, so a relative path would name another file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "vmhooks/hook_impl.h"
#include "vmhooks/vmhook.h"

struct vmhook {
	const struct hook_ops *ops;
	void *state;
	char *spec;
};

static const struct hook_ops freeze_hook_ops = { .prefix = "freeze", .internal = true };
static const struct hook_ops none_hook_ops = { .prefix = "none", .internal = true };

static const struct hook_ops *const backends[] = {
	&qmp_hook_ops, &qmp_rbd_hook_ops, &qmp_migrate_hook_ops, &libvirt_hook_ops,
	&exec_hook_ops, &freeze_hook_ops, &none_hook_ops,
};

/* The table whose prefix the spec starts with; *arg is what follows it. */
static const struct hook_ops *find_backend(const char *spec, const char **arg)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		const char *p = backends[i]->prefix;
		size_t n = strlen(p);

		if (p[n - 1] == ':' ? strncmp(spec, p, n) == 0 : strcmp(spec, p) == 0) {
			*arg = spec + n;
			return backends[i];
		}
	}
	return NULL;
}

/* Checks of the spec's argument that are the daemon's, not a back end's. */
static int check_arg(const struct hook_ops *ops, const char *arg, char *err, size_t errlen)
{
	if ((ops == &qmp_hook_ops || ops == &qmp_rbd_hook_ops || ops == &qmp_migrate_hook_ops) &&
	    *arg && *arg != '/') {
		hook_errf(err, errlen, "%.*s '%s': socket path must be absolute",
			  (int)strlen(ops->prefix) - 1, ops->prefix, arg);
		return -EINVAL;
	}
	if (ops == &exec_hook_ops && *arg != '/' && strchr(arg, '/')) {
		hook_errf(err, errlen, "exec '%s': program must be an absolute path or a name in PATH",
			  arg);
		return -EINVAL;
	}
	return 0;
}

int vmhook_new(const char *spec, struct vmhook **out, char *err, size_t errlen)
{
	const struct hook_ops *ops;
	struct vmhook *h;
	const char *arg;
	int rc;

	*out = NULL;
	ops = find_backend(spec, &arg);
	if (!ops) {
		hook_errf(err, errlen, "unknown hook '%s' (expected qmp:SOCKET, qmp-rbd:SOCKET, "
			  "qmp-migrate:SOCKET@URI, libvirt:DOMAIN[@URI], exec:PROGRAM, freeze or none)",
			  spec);
		return -EINVAL;
	}
	rc = check_arg(ops, arg, err, errlen);
	if (rc)
		return rc;
	h = calloc(1, sizeof(*h));
	if (!h || !(h->spec = strdup(spec))) {
		free(h);
		hook_errf(err, errlen, "hook '%s': out of memory", spec);
		return -ENOMEM;
	}
	h->ops = ops;
	rc = ops->create ? ops->create(arg, &h->state, err, errlen) : 0;
	if (rc < 0) {
		free(h->spec);
		free(h);
		return rc;
	}
	*out = h;
	return 0;
}

void vmhook_free(struct vmhook *h)
{
	if (!h)
		return;
	if (h->ops->destroy)
		h->ops->destroy(h->state);
	free(h->spec);
	free(h);
}

const char *vmhook_spec(const struct vmhook *h)
{
	return h->spec;
}

bool vmhook_is_internal(const struct vmhook *h)
{
	return h->ops->internal;
}

int vmhook_pause(struct vmhook *h, const char *mountpoint, const char *const *files,
		 int nfiles, int timeout_ms, char *err, size_t errlen)
{
	struct hook_target t = { .mountpoint = mountpoint, .files = files, .nfiles = nfiles };
	int64_t t0 = hook_now_ms();
	int rc;

	if (!h->ops->pause)
		return 0;
	rc = h->ops->pause(h->state, &t, timeout_ms, err, errlen);
	if (rc == 0)
		log_info("hook '%s': paused in %lld ms", h->spec, (long long)(hook_now_ms() - t0));
	return rc;
}

bool vmhook_hands_over(const struct vmhook *h)
{
	return h->ops->handover != NULL;
}

int vmhook_handover(struct vmhook *h, const struct vmhook_image *imgs, int n, int timeout_ms,
		    char *err, size_t errlen)
{
	int64_t t0 = hook_now_ms();
	int rc;

	if (!h->ops->handover)
		return 0;
	rc = h->ops->handover(h->state, imgs, n, timeout_ms, err, errlen);
	if (rc == 0)
		log_info("hook '%s': %d disk(s) handed over in %lld ms", h->spec, n,
			 (long long)(hook_now_ms() - t0));
	return rc;
}

void vmhook_adopt_paused(struct vmhook *h, const char *mountpoint, const char *const *files,
			 int nfiles)
{
	struct hook_target t = { .mountpoint = mountpoint, .files = files, .nfiles = nfiles };

	if (h->ops->adopt)
		h->ops->adopt(h->state, &t);
}

int vmhook_resume(struct vmhook *h, int timeout_ms, char *err, size_t errlen)
{
	int64_t t0 = hook_now_ms();
	int rc;

	if (!h->ops->resume)
		return 0;
	rc = h->ops->resume(h->state, timeout_ms, err, errlen);
	if (rc == 0)
		log_info("hook '%s': resumed in %lld ms", h->spec, (long long)(hook_now_ms() - t0));
	return rc;
}

int vmhook_query(struct vmhook *h, char *state, size_t len, int timeout_ms,
		 char *err, size_t errlen)
{
	if (h->ops->query)
		return h->ops->query(h->state, state, len, timeout_ms, err, errlen);
	hook_errf(err, errlen, "hook '%s': cannot tell the vm's state", h->spec);
	return -ENOTSUP;
}

bool vmhook_hands_off(const struct vmhook *h)
{
	return h->ops->hands_off;
}

int vmhook_cancel(struct vmhook *h, int timeout_ms, char *err, size_t errlen)
{
	int rc;

	if (!h->ops->cancel)
		return vmhook_resume(h, timeout_ms, err, errlen);
	rc = h->ops->cancel(h->state, timeout_ms, err, errlen);
	if (rc == 0)
		log_info("hook '%s': cancelled", h->spec);
	return rc;
}

int vmhook_disks(struct vmhook *h, char ***paths, size_t *n, int timeout_ms, char *err,
		 size_t errlen)
{
	*paths = NULL;
	*n = 0;
	if (h->ops->disks)
		return h->ops->disks(h->state, paths, n, timeout_ms, err, errlen);
	hook_errf(err, errlen, "hook '%s': cannot tell the vm's disks", h->spec);
	return -ENOTSUP;
}

int vmhook_migration(struct vmhook *h, char *state, size_t len, int timeout_ms, char *err,
		     size_t errlen)
{
	if (h->ops->migration)
		return h->ops->migration(h->state, state, len, timeout_ms, err, errlen);
	hook_errf(err, errlen, "hook '%s': does not migrate the vm", h->spec);
	return -ENOTSUP;
}

void vmhook_describe(struct vmhook *h, char *buf, size_t len)
{
	if (len)
		buf[0] = '\0';
	if (h->ops->describe)
		h->ops->describe(h->state, buf, len);
}

void vmhook_vm_name(struct vmhook *h, char *buf, size_t len)
{
	if (len)
		buf[0] = '\0';
	if (h->ops->vm_name)
		h->ops->vm_name(h->state, buf, len);
}
