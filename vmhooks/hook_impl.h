/*
 * hook_impl: the private interface between vmhook.c (spec parsing, the one
 * dispatch) and the hook back ends.  Not included outside vmhooks/ (and its
 * unit test).
 *
 * Each back end is one table of operations, like the event-loop back ends
 * of Redis's ae.c: vmhook.c picks the table by the spec's prefix and never
 * switches on the kind.  A back end's state is created by .create from the
 * part of the spec after the prefix, and follows the vmhook.h contract:
 * block for at most timeout_ms, -errno and one line in err on failure,
 * never touched by two threads at once, resume only what it paused.
 */
#ifndef RELOCFS_HOOK_IMPL_H
#define RELOCFS_HOOK_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmhooks/vmhook.h"

/* What a pause is about: the mount and the files being cut over. */
struct hook_target {
	const char *mountpoint;
	const char *const *files;	/* absolute paths through the mount */
	int nfiles;
};

struct hook_ops {
	const char *prefix;	/* "qmp:"; a spec without ':' ("freeze") matches whole */
	bool internal;		/* pauses nothing outside relocfs */
	int (*create)(const char *arg, void **state, char *err, size_t errlen);
	void (*destroy)(void *state);
	int (*pause)(void *state, const struct hook_target *t, int timeout_ms, char *err,
		     size_t errlen);
	int (*resume)(void *state, int timeout_ms, char *err, size_t errlen);
	/* take over a pause that another process made (NULL: nothing to do) */
	void (*adopt)(void *state, const struct hook_target *t);
	/* after the switch, before resume: the vmhook_handover contract (NULL:
	 * the back end hands nothing over) */
	int (*handover)(void *state, const struct vmhook_image *imgs, int n, int timeout_ms,
			char *err, size_t errlen);
	/* NULL: the back end cannot tell the VM's state */
	int (*query)(void *state, char *buf, size_t len, int timeout_ms, char *err,
		     size_t errlen);

	/* Hooks that move the VM to another host (vmhook.h, "Hand-off"). */
	bool hands_off;
	/* undo what pause started; the VM runs on where it was */
	int (*cancel)(void *state, int timeout_ms, char *err, size_t errlen);
	/* the image files the VM has open (malloc'd array of malloc'd paths) */
	int (*disks)(void *state, char ***paths, size_t *n, int timeout_ms, char *err,
		     size_t errlen);
	/* QEMU's name for the migration's state now ("active", "completed", ...) */
	int (*migration)(void *state, char *buf, size_t len, int timeout_ms, char *err,
			 size_t errlen);
	/* one line on the VM and what the hook saw of it */
	void (*describe)(void *state, char *buf, size_t len);
	/* the VM's name, "" if it has none or the hook does not know it yet */
	void (*vm_name)(void *state, char *buf, size_t len);
};

extern const struct hook_ops qmp_hook_ops;	/* qmp_hook.c */
extern const struct hook_ops qmp_rbd_hook_ops;	/* qmp_hook.c, with qmp_rbd.c */
extern const struct hook_ops qmp_migrate_hook_ops;	/* qmp_migrate_hook.c */
extern const struct hook_ops libvirt_hook_ops;	/* libvirt_hook.c */
extern const struct hook_ops exec_hook_ops;	/* exec_hook.c */

/* ---- hook_util.c: shared by every back end ---- */

/* snprintf into err if err is not NULL, folded to one line */
void hook_errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* monotonic clock in ms, and ms left until deadline (0 if passed) */
int64_t hook_now_ms(void);
int hook_left_ms(int64_t deadline);

/* Result of one child process run by hook_run(). */
struct hook_run_result {
	int status;		/* wait status (valid when the child was reaped) */
	bool timed_out;		/* killed (SIGKILL to its process group) on timeout */
	char last_line[256];	/* last non-empty line of its stdout+stderr */
	char out[512];		/* the start of its stdout+stderr, if keep_out */
};

/*
 * Run argv (argv[0] is looked up in PATH) with envp (NULL: inherit), stdin
 * /dev/null, stdout and stderr captured (each line logged at debug level with
 * tag as prefix).  The child gets its own process group so that a timeout
 * kills it and whatever it started.  Returns 0 when the child was run and
 * reaped (look at res->status), -ETIMEDOUT after killing it, or -errno when
 * it could not be started (then err says why).  Safe in a multithreaded
 * process (posix_spawn, no allocation after the child exists).
 */
int hook_run(const char *tag, char *const argv[], char *const envp[], int timeout_ms,
	     bool keep_out, struct hook_run_result *res, char *err, size_t errlen);

#endif
