/* relocate: (being written) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "fs/relocate.h"
#include "fs/reloc.h"
#include "fs/inode.h"

int reloc_init(int source_fd, const char *source_path, const char *mountpoint,
	       int *root_fd, char *err, size_t errlen)
{
	*root_fd = dup(source_fd);
	return 0;
}

int reloc_start(void) { return 0; }
void reloc_stop(void) {}

int reloc_command(const struct ctl_request *req, char **out)
{
	*out = strdup("not yet");
	return CTL_EFAIL;
}

int reloc_namespace_check(struct rnode *parent, const char *name, bool creates)
{
	return 0;
}

bool reloc_hidden_name(struct rnode *parent, const char *name)
{
	return parent == itab_root() && strcmp(name, ".relocfs") == 0;
}
