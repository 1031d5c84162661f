/*
 * vmhook: parses "--hook SPEC" and dispatches to the back ends (qmp.c,
 * exec_hook.c, libvirt_hook.c).  "freeze" and "none" do nothing here: the
 * daemon's own I/O hold is the daemon's business, not a hook's.
 *
 * Paths in specs (the QMP socket, the exec program) must be absolute, or for
 * exec a bare name looked up in PATH: the daemon runs with "/" as its working
 * directory, not relocctl's, so a relative path would name another file.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs/log.h"
#include "vmhooks/hook_impl.h"
#include "vmhooks/vmhook.h"

enum vmhook_kind { VMHOOK_NONE, VMHOOK_FREEZE, VMHOOK_QMP, VMHOOK_LIBVIRT, VMHOOK_EXEC };

struct vmhook {
	enum vmhook_kind kind;
	char *spec;
	union {
		struct qmp_hook *qmp;
		struct exec_hook *exec;
		struct libvirt_hook *libvirt;
	} u;
};

void hook_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	/* one line: a peer's message could carry a newline */
	for (char *p = err; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

int64_t hook_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int hook_left_ms(int64_t deadline)
{
	int64_t left = deadline - hook_now_ms();

	if (left <= 0)
		return 0;
	return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

static bool has_prefix(const char *s, const char *prefix, const char **rest)
{
	size_t n = strlen(prefix);

	if (strncmp(s, prefix, n) != 0)
		return false;
	*rest = s + n;
	return true;
}

int vmhook_new(const char *spec, struct vmhook **out, char *err, size_t errlen)
{
	struct vmhook *h;
	const char *arg;
	int rc = 0;

	*out = NULL;
	h = calloc(1, sizeof(*h));
	if (!h || !(h->spec = strdup(spec))) {
		free(h);
		hook_errf(err, errlen, "hook '%s': out of memory", spec);
		return -ENOMEM;
	}
	if (strcmp(spec, "none") == 0) {
		h->kind = VMHOOK_NONE;
	} else if (strcmp(spec, "freeze") == 0) {
		h->kind = VMHOOK_FREEZE;
	} else if (has_prefix(spec, "qmp:", &arg)) {
		h->kind = VMHOOK_QMP;
		if (*arg && *arg != '/') {
			hook_errf(err, errlen, "qmp '%s': socket path must be absolute", arg);
			rc = -EINVAL;
		} else {
			rc = qmp_hook_new(arg, &h->u.qmp, err, errlen);
		}
	} else if (has_prefix(spec, "libvirt:", &arg)) {
		h->kind = VMHOOK_LIBVIRT;
		rc = libvirt_hook_new(arg, &h->u.libvirt, err, errlen);
	} else if (has_prefix(spec, "exec:", &arg)) {
		h->kind = VMHOOK_EXEC;
		if (*arg != '/' && strchr(arg, '/')) {
			hook_errf(err, errlen,
				  "exec '%s': program must be an absolute path or a name in PATH",
				  arg);
			rc = -EINVAL;
		} else {
			rc = exec_hook_new(arg, &h->u.exec, err, errlen);
		}
	} else {
		hook_errf(err, errlen, "unknown hook '%s' (expected qmp:SOCKET, "
			  "libvirt:DOMAIN[@URI], exec:PROGRAM, freeze or none)", spec);
		rc = -EINVAL;
	}
	if (rc < 0) {
		h->kind = VMHOOK_NONE;	/* nothing of the back end to free */
		vmhook_free(h);
		return rc;
	}
	*out = h;
	return 0;
}

void vmhook_free(struct vmhook *h)
{
	if (!h)
		return;
	switch (h->kind) {
	case VMHOOK_QMP:
		qmp_hook_free(h->u.qmp);
		break;
	case VMHOOK_EXEC:
		exec_hook_free(h->u.exec);
		break;
	case VMHOOK_LIBVIRT:
		libvirt_hook_free(h->u.libvirt);
		break;
	case VMHOOK_NONE:
	case VMHOOK_FREEZE:
		break;
	}
	free(h->spec);
	free(h);
}

const char *vmhook_spec(const struct vmhook *h)
{
	return h->spec;
}

bool vmhook_is_internal(const struct vmhook *h)
{
	return h->kind == VMHOOK_NONE || h->kind == VMHOOK_FREEZE;
}

int vmhook_pause(struct vmhook *h, const char *mountpoint, const char *const *files,
		 int nfiles, int timeout_ms, char *err, size_t errlen)
{
	int64_t t0 = hook_now_ms();
	int rc = 0;

	switch (h->kind) {
	case VMHOOK_QMP:
		rc = qmp_hook_pause(h->u.qmp, timeout_ms, err, errlen);
		break;
	case VMHOOK_EXEC:
		rc = exec_hook_pause(h->u.exec, mountpoint, files, nfiles, timeout_ms, err, errlen);
		break;
	case VMHOOK_LIBVIRT:
		rc = libvirt_hook_pause(h->u.libvirt, timeout_ms, err, errlen);
		break;
	case VMHOOK_NONE:
	case VMHOOK_FREEZE:
		return 0;
	}
	if (rc == 0)
		log_info("hook '%s': paused in %lld ms", h->spec, (long long)(hook_now_ms() - t0));
	return rc;
}

int vmhook_resume(struct vmhook *h, int timeout_ms, char *err, size_t errlen)
{
	int64_t t0 = hook_now_ms();
	int rc = 0;

	switch (h->kind) {
	case VMHOOK_QMP:
		rc = qmp_hook_resume(h->u.qmp, timeout_ms, err, errlen);
		break;
	case VMHOOK_EXEC:
		rc = exec_hook_resume(h->u.exec, timeout_ms, err, errlen);
		break;
	case VMHOOK_LIBVIRT:
		rc = libvirt_hook_resume(h->u.libvirt, timeout_ms, err, errlen);
		break;
	case VMHOOK_NONE:
	case VMHOOK_FREEZE:
		return 0;
	}
	if (rc == 0)
		log_info("hook '%s': resumed in %lld ms", h->spec, (long long)(hook_now_ms() - t0));
	return rc;
}

int vmhook_query(struct vmhook *h, char *state, size_t len, int timeout_ms,
		 char *err, size_t errlen)
{
	switch (h->kind) {
	case VMHOOK_QMP:
		return qmp_hook_query(h->u.qmp, state, len, timeout_ms, err, errlen);
	case VMHOOK_LIBVIRT:
		return libvirt_hook_query(h->u.libvirt, state, len, timeout_ms, err, errlen);
	case VMHOOK_EXEC:
	case VMHOOK_NONE:
	case VMHOOK_FREEZE:
		break;
	}
	hook_errf(err, errlen, "hook '%s': cannot tell the vm's state", h->spec);
	return -ENOTSUP;
}
