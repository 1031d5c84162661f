/* migrate: (being written) */
#include <errno.h>
#include "fs/migrate.h"
ssize_t mig_read(struct migration *m, char *buf, size_t len, off_t off) { return -ENOSYS; }
ssize_t mig_write(struct migration *m, const char *buf, size_t len, off_t off) { return -ENOSYS; }
int mig_truncate(struct migration *m, off_t size) { return -ENOSYS; }
int mig_fallocate(struct migration *m, int mode, off_t off, off_t len) { return -ENOSYS; }
int mig_fsync(struct migration *m, bool datasync) { return -ENOSYS; }
off_t mig_lseek(struct migration *m, off_t off, int whence) { return -ENOSYS; }
void mig_getattr(struct migration *m, struct stat *st) {}
