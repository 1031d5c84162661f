/*
 * hook_impl: private interface between vmhook.c (spec parsing, dispatch) and
 * the hook back ends.  Not included outside vmhooks/ (and its unit test).
 *
 * Each back end owns a small state struct created by *_new from the part of
 * the spec after "kind:", and follows the vmhook.h contract: block for at
 * most timeout_ms, -errno and one line in err on failure, never touched by
 * two threads at once.
 */
#ifndef RELOCFS_HOOK_IMPL_H
#define RELOCFS_HOOK_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* snprintf into err if err is not NULL; used by every back end */
void hook_errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* monotonic clock in ms, and ms left until deadline (0 if passed) */
int64_t hook_now_ms(void);
int hook_left_ms(int64_t deadline);

/* ---- qmp.c: the QMP hook (the client itself is in qmp.h) ---- */
struct qmp_hook;
int qmp_hook_new(const char *socket_path, struct qmp_hook **out, char *err, size_t errlen);
void qmp_hook_free(struct qmp_hook *qh);
int qmp_hook_pause(struct qmp_hook *qh, int timeout_ms, char *err, size_t errlen);
int qmp_hook_resume(struct qmp_hook *qh, int timeout_ms, char *err, size_t errlen);
int qmp_hook_query(struct qmp_hook *qh, char *state, size_t len, int timeout_ms,
		   char *err, size_t errlen);

/* ---- exec_hook.c: the exec hook, and a child runner libvirt_hook.c shares ---- */

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

struct exec_hook;
int exec_hook_new(const char *program, struct exec_hook **out, char *err, size_t errlen);
void exec_hook_free(struct exec_hook *eh);
int exec_hook_pause(struct exec_hook *eh, const char *mountpoint, const char *const *files,
		    int nfiles, int timeout_ms, char *err, size_t errlen);
int exec_hook_resume(struct exec_hook *eh, int timeout_ms, char *err, size_t errlen);

/* ---- libvirt_hook.c: libvirt through virsh ---- */
struct libvirt_hook;
/* arg is DOMAIN or DOMAIN@URI; RELOCFS_VIRSH in the environment names the
 * virsh binary (default "virsh", looked up in PATH) */
int libvirt_hook_new(const char *arg, struct libvirt_hook **out, char *err, size_t errlen);
void libvirt_hook_free(struct libvirt_hook *lh);
int libvirt_hook_pause(struct libvirt_hook *lh, int timeout_ms, char *err, size_t errlen);
int libvirt_hook_resume(struct libvirt_hook *lh, int timeout_ms, char *err, size_t errlen);
int libvirt_hook_query(struct libvirt_hook *lh, char *state, size_t len, int timeout_ms,
		       char *err, size_t errlen);

#endif
