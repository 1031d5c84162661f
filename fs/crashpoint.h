/*
 * crashpoint: named places where the crash tests kill the daemon.
 *
 * RELOCFS_CRASHPOINT=NAME makes the daemon kill itself with SIGKILL the
 * (RELOCFS_CRASHPOINT_SKIP + 1)-th time it reaches crashpoint("NAME").  Without
 * the variable a crashpoint costs one load and a branch.  The names are
 * listed where they are used; tests/crash/ runs the daemon into each.
 */
#ifndef RELOCFS_CRASHPOINT_H
#define RELOCFS_CRASHPOINT_H

void crashpoint_init(void);
void crashpoint_hit(const char *name);

extern const char *crashpoint_name;

static inline void crashpoint(const char *name)
{
	if (__builtin_expect(crashpoint_name != 0, 0))
		crashpoint_hit(name);
}

#endif
