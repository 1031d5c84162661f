/*
 * reloc: relocation as the filesystem sees it: which names may change while
 * files migrate, and where a file relocated on its own now lives.  The
 * orchestration (migrate, cutover, abort, restart) lives in fs/relocate.c.
 */
#ifndef RELOCFS_RELOC_H
#define RELOCFS_RELOC_H

#include <stdbool.h>

#include "fs/inode.h"

/* 0 if a namespace change of name in parent may go ahead, -EBUSY while a
 * migration pins it (creates: the name is created or replaced; otherwise
 * it is removed or renamed), -EXDEV for a file that lives on another
 * backend than its directory. */
int reloc_namespace_check(struct rnode *parent, const char *name, bool creates);

/* true for the name the daemon keeps its state under (".relocfs" at the root) */
bool reloc_hidden_name(struct rnode *parent, const char *name);

/* For a file relocated on its own: an O_PATH descriptor on where it lives
 * now.  -ENOENT if name in parent is not such a file. */
int reloc_override_open(struct rnode *parent, const char *name);

/* Called before a flush (fsync, fdatasync, O_SYNC write) is acknowledged:
 * waits while a cutover's switch is not durable yet (a few milliseconds
 * right after the hold). */
int reloc_flush_barrier(void);

/* After an unlink of such a file's name: forget the override. */
void reloc_override_removed(struct rnode *parent, const char *name);

#endif
