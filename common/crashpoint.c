/*
 * crashpoint: see crashpoint.h.  Test support only; inert unless the
 * environment names a crash point.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/crashpoint.h"
#include "common/log.h"

const char *crashpoint_name;
const char *delaypoint_name;
static atomic_long crashpoint_skip;
static size_t delaypoint_len;
static unsigned delaypoint_us;
static pid_t crash_also;		/* killed first: the supervisor (crashpoint_scope) */

void crashpoint_init(void)
{
	const char *n = getenv("RELOCFS_CRASHPOINT"), *s = getenv("RELOCFS_CRASHPOINT_SKIP");

	if (n && *n) {
		crashpoint_name = n;
		atomic_store(&crashpoint_skip, s ? atol(s) : 0);
		log_info("crash point '%s' armed", n);
	}
	n = getenv("RELOCFS_DELAYPOINT");
	s = n ? strchr(n, ':') : NULL;
	if (s && s > n) {
		delaypoint_len = (size_t)(s - n);
		delaypoint_us = (unsigned)atol(s + 1);
		delaypoint_name = n;
		log_info("delay point '%.*s' armed: %u us", (int)delaypoint_len, n, delaypoint_us);
	}
}

void delaypoint_hit(const char *name)
{
	if (strlen(name) == delaypoint_len && !strncmp(name, delaypoint_name, delaypoint_len))
		usleep(delaypoint_us);
}

void crashpoint_hit(const char *name)
{
	if (strcmp(name, crashpoint_name) != 0)
		return;
	if (atomic_fetch_sub(&crashpoint_skip, 1) > 0)
		return;
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
