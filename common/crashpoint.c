/*
 * crashpoint: see crashpoint.h.  Test support only; inert unless the
 * environment names a crash point or a delay point.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/crashpoint.h"
#include "common/log.h"

const char *crashpoint_name;
const char *delaypoint_name;
/* how many times each crash point is still to be passed: in memory the
 * daemon's processes share (made before the first worker), so that a crash
 * point kills one worker, not every worker after it too.  The variable may
 * name several points, "A,B,C": each kills once (a test that goes through
 * several with one daemon and one guest). */
#define CRASHPOINTS_MAX 8
static atomic_long *crashpoint_skip;
static atomic_long skip_private[CRASHPOINTS_MAX];
static pid_t crash_also;		/* killed first: the supervisor (crashpoint_scope) */

void crashpoint_init(void)
{
	const char *n = getenv("RELOCFS_CRASHPOINT"), *s = getenv("RELOCFS_CRASHPOINT_SKIP");

	if (n && *n) {
		void *p = mmap(NULL, CRASHPOINTS_MAX * sizeof(atomic_long), PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

		crashpoint_skip = p == MAP_FAILED ? skip_private : p;
		for (int i = 0; i < CRASHPOINTS_MAX; i++)
			atomic_store(&crashpoint_skip[i], s ? atol(s) : 0);
		crashpoint_name = n;
		log_info("crash point '%s' armed", n);
	}
	n = getenv("RELOCFS_DELAYPOINT");
	if (n && strchr(n, ':')) {
		delaypoint_name = n;
		log_info("delay points armed: %s", n);
	}
}

/* RELOCFS_DELAYPOINT=NAME:USEC[,NAME:USEC]... */
void delaypoint_hit(const char *name)
{
	size_t len = strlen(name);

	for (const char *p = delaypoint_name; p && *p;) {
		const char *colon = strchr(p, ':'), *comma;

		if (!colon)
			return;
		comma = strchr(colon, ',');
		if ((size_t)(colon - p) == len && !strncmp(p, name, len)) {
			unsigned us = (unsigned)atol(colon + 1);

			log_info("delay point '%s' reached: waiting %u us", name, us);
			usleep(us);
			return;
		}
		p = comma ? comma + 1 : NULL;
	}
}

void crashpoint_hit(const char *name)
{
	size_t len = strlen(name);
	int i = 0;
	const char *p;

	for (p = crashpoint_name; p; p = strchr(p, ','), p = p ? p + 1 : NULL, i++) {
		if (i == CRASHPOINTS_MAX)
			return;
		if (!strncmp(p, name, len) && (p[len] == ',' || p[len] == '\0'))
			break;
	}
	if (!p)
		return;
	if (atomic_fetch_sub(&crashpoint_skip[i], 1) != 0)
		return;	/* skipped, or fired already */
	if (crash_also > 0) {
		log_warnx("crash point '%s' reached: killing the daemon", name);
		kill(crash_also, SIGKILL);
	} else {
		log_warnx("crash point '%s' reached: killing the worker", name);
	}
	kill(getpid(), SIGKILL);
	_exit(137);
}

void crashpoint_scope(pid_t supervisor)
{
	const char *scope = getenv("RELOCFS_CRASHPOINT_SCOPE");

	/* the daemon as a whole dies, as a host crash or an OOM kill of both
	 * would have it, unless the test asks for the worker alone */
	crash_also = scope && !strcmp(scope, "worker") ? 0 : supervisor;
}
