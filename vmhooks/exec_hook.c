/*
 * exec_hook: the "exec:PROGRAM" hook.
 *
 * "PROGRAM pause" runs with RELOCFS_FILES (the files being cut over, absolute
 * paths through the mount, one per line) and RELOCFS_MOUNTPOINT added to the
 * daemon's environment; "PROGRAM resume" gets the same environment.  A
 * non-zero exit from pause fails the pause (the caller cancels the cutover);
 * the program is expected to leave the VM running when it fails.  A pause
 * that times out is killed, with its whole process group, and then "resume"
 * is run once, since nobody knows how far it got.  resume is retried within
 * its timeout while it exits non-zero, so it should be idempotent.
 *
 * Not done: running the program as another user, passing it more than the
 * environment (no stdin), keeping more of its output than the start and the
 * last line (each line goes to the debug log).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "common/log.h"
#include "vmhooks/hook_impl.h"

extern char **environ;

struct exec_hook {
	char *program;
	char **envp;		/* environment built at pause, reused by resume */
	bool paused;		/* pause succeeded, resume not yet */
};

static int exec_hook_new(const char *program, void **out, char *err, size_t errlen)
{
	struct exec_hook *eh;

	*out = NULL;
	if (!*program) {
		hook_errf(err, errlen, "exec hook needs a program (exec:PROGRAM)");
		return -EINVAL;
	}
	eh = calloc(1, sizeof(*eh));
	if (!eh || !(eh->program = strdup(program))) {
		free(eh);
		hook_errf(err, errlen, "exec '%s': out of memory", program);
		return -ENOMEM;
	}
	*out = eh;
	return 0;
}

static void free_envp(char **envp)
{
	if (!envp)
		return;
	for (char **e = envp; *e; e++)
		free(*e);
	free(envp);
}

static void exec_hook_free(void *arg)
{
	struct exec_hook *eh = arg;

	if (!eh)
		return;
	free_envp(eh->envp);
	free(eh->program);
	free(eh);
}

/* the daemon's environment, minus any RELOCFS_FILES / RELOCFS_MOUNTPOINT, plus ours */
static char **build_envp(const char *mountpoint, const char *const *files, int nfiles)
{
	size_t n = 0, k = 0, flen = sizeof("RELOCFS_FILES=");
	char **envp, *f;

	for (char **e = environ; *e; e++)
		n++;
	envp = calloc(n + 3, sizeof(*envp));
	if (!envp)
		return NULL;
	for (char **e = environ; *e; e++) {
		if (strncmp(*e, "RELOCFS_FILES=", 14) == 0 ||
		    strncmp(*e, "RELOCFS_MOUNTPOINT=", 19) == 0)
			continue;
		if (!(envp[k++] = strdup(*e)))
			goto out_free;
	}
	for (int i = 0; i < nfiles; i++)
		flen += strlen(files[i]) + 1;
	f = envp[k++] = malloc(flen);
	if (!f)
		goto out_free;
	f += sprintf(f, "RELOCFS_FILES=");
	for (int i = 0; i < nfiles; i++)
		f += sprintf(f, "%s%s", i ? "\n" : "", files[i]);
	if (asprintf(&envp[k++], "RELOCFS_MOUNTPOINT=%s", mountpoint ? mountpoint : "") < 0) {
		envp[k - 1] = NULL;
		goto out_free;
	}
	return envp;

out_free:
	free_envp(envp);
	return NULL;
}

/* one run of "PROGRAM action"; 0 only for exit status 0 */
static int exec_hook_run(struct exec_hook *eh, const char *action, int timeout_ms,
			 char *err, size_t errlen)
{
	char *argv[] = { eh->program, (char *)action, NULL };
	struct hook_run_result res;
	char tag[300];
	int rc;

	snprintf(tag, sizeof(tag), "exec '%s' %s", eh->program, action);
	rc = hook_run(tag, argv, eh->envp, timeout_ms, false, &res, err, errlen);
	if (rc < 0)
		return rc;
	if (WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0)
		return 0;
	if (WIFEXITED(res.status) && WEXITSTATUS(res.status) == 127) {
		/* what a spawn that cannot exec reports where it is a plain fork
		 * (as under valgrind), and what shells exit with */
		hook_errf(err, errlen, "exec '%s': cannot run it: %s (exit status 127)", eh->program,
			  strerror(ENOENT));
		return -ENOENT;
	}
	if (WIFEXITED(res.status))
		hook_errf(err, errlen, "exec '%s': %s exited with status %d%s%s", eh->program,
			  action, WEXITSTATUS(res.status), res.last_line[0] ? ": " : "",
			  res.last_line);
	else
		hook_errf(err, errlen, "exec '%s': %s killed by signal %d%s%s", eh->program,
			  action, WTERMSIG(res.status), res.last_line[0] ? ": " : "",
			  res.last_line);
	return -EIO;
}

static int exec_hook_pause(void *arg, const struct hook_target *t, int timeout_ms, char *err,
			   size_t errlen)
{
	struct exec_hook *eh = arg;
	char **envp;
	int rc;

	envp = build_envp(t->mountpoint, t->files, t->nfiles);
	if (!envp) {
		hook_errf(err, errlen, "exec '%s': out of memory", eh->program);
		return -ENOMEM;
	}
	free_envp(eh->envp);
	eh->envp = envp;
	eh->paused = false;

	rc = exec_hook_run(eh, "pause", timeout_ms, err, errlen);
	if (rc == -ETIMEDOUT) {
		char rerr[256];

		hook_errf(err, errlen, "exec '%s': pause timed out after %d ms, killed",
			  eh->program, timeout_ms);
		/* it may have paused before it hung: undo, as the contract asks */
		if (exec_hook_run(eh, "resume", timeout_ms, rerr, sizeof(rerr)) < 0)
			log_warnx("%s", rerr);
		return rc;
	}
	if (rc < 0)
		return rc;
	eh->paused = true;
	return 0;
}

static int exec_hook_resume(void *arg, int timeout_ms, char *err, size_t errlen)
{
	struct exec_hook *eh = arg;
	int64_t deadline = hook_now_ms() + timeout_ms;
	int rc;

	if (!eh->paused)
		return 0;
	for (;;) {
		rc = exec_hook_run(eh, "resume", hook_left_ms(deadline), err, errlen);
		if (rc == 0) {
			eh->paused = false;
			return 0;
		}
		/* cannot start it, or out of time: give up */
		if (rc != -EIO || hook_left_ms(deadline) <= 100)
			return rc;
		log_warnx("%s, retrying", err);
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static void exec_hook_adopt(void *arg, const struct hook_target *t)
{
	struct exec_hook *eh = arg;
	char **envp = build_envp(t->mountpoint, t->files, t->nfiles);

	if (envp) {
		free_envp(eh->envp);
		eh->envp = envp;
	}
	eh->paused = true;
}

const struct hook_ops exec_hook_ops = {
	.prefix = "exec:",
	.create = exec_hook_new,
	.destroy = exec_hook_free,
	.pause = exec_hook_pause,
	.resume = exec_hook_resume,
	.adopt = exec_hook_adopt,
};
