/*
 * crashpoint: named places where the crash tests kill the daemon.
 *
 * RELOCFS_CRASHPOINT=NAME makes the daemon kill itself with SIGKILL the
 * (RELOCFS_CRASHPOINT_SKIP + 1)-th time it reaches crashpoint("NAME"); a list
 * "NAME,NAME2,..." (up to 8) arms each, and each kills once.  Without
 * the variable a crashpoint costs one load and a branch.  The names are
 * listed where they are used; tests/crash/ runs the daemon into each.  The
 * whole daemon dies (the supervisor named by crashpoint_scope, then the
 * process that reached the point), or with RELOCFS_CRASHPOINT_SCOPE=worker
 * only the worker, which the supervisor replaces.
 *
 * RELOCFS_DELAYPOINT=NAME:USEC[,NAME:USEC]... makes every delaypoint("NAME")
 * log that it was reached and sleep USEC microseconds: it widens a race
 * window so that a test hits it every time.
 */
#ifndef RELOCFS_CRASHPOINT_H
#define RELOCFS_CRASHPOINT_H

#include <sys/types.h>

void crashpoint_init(void);
void crashpoint_hit(const char *name);
/* A worker names its supervisor, which a crash point kills too. */
void crashpoint_scope(pid_t supervisor);

void delaypoint_hit(const char *name);

extern const char *crashpoint_name;
extern const char *delaypoint_name;

static inline void crashpoint(const char *name)
{
	if (__builtin_expect(crashpoint_name != 0, 0))
		crashpoint_hit(name);
}

static inline void delaypoint(const char *name)
{
	if (__builtin_expect(delaypoint_name != 0, 0))
		delaypoint_hit(name);
}

#endif
