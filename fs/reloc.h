/*
 * reloc: relocation as the filesystem sees it: which names may change while
 * files migrate.  The orchestration (migrate, cutover, abort, restart) lives
 * in fs/relocate.c; the control server calls it.
 */
#ifndef RELOCFS_RELOC_H
#define RELOCFS_RELOC_H

#include <stdbool.h>

#include "fs/inode.h"

/* 0 if a namespace change (create, unlink, rename, ...) of name in parent may
 * go ahead, -EBUSY while a migration pins it. */
int reloc_namespace_check(struct rnode *parent, const char *name, bool creates);

/* true for the name the daemon keeps its state under (".relocfs" at the root) */
bool reloc_hidden_name(struct rnode *parent, const char *name);

#endif
