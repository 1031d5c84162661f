/*
 * util: see util.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/util.h"

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

char *path_join(const char *a, const char *b)
{
	if (!*b)
		return strdup(a);
	if (!*a)
		return strdup(b);
	return xasprintf("%s/%s", a, b);
}

bool path_within(const char *p, const char *dir)
{
	size_t l = strlen(dir);

	return !strcmp(p, dir) || (!strncmp(p, dir, l) && (p[l] == '/' || !strcmp(dir, "/")));
}

void fd_path(int fd, char buf[64])
{
	snprintf(buf, 64, "/proc/self/fd/%d", fd);
}

int pread_full(int fd, char *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pread(fd, buf + done, len - done, off + (off_t)done);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0) {
			memset(buf + done, 0, len - done);	/* past EOF reads as zeros */
			break;
		}
		done += (size_t)r;
	}
	return 0;
}

int pwrite_full(int fd, const char *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pwrite(fd, buf + done, len - done, off + (off_t)done);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)r;
	}
	return 0;
}

int rm_rf_at(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d;
	struct dirent *de;

	if (fd == -1) {
		if (errno == ENOTDIR || errno == ELOOP)
			return unlinkat(dirfd, name, 0) == -1 ? -errno : 0;
		return errno == ENOENT ? 0 : -errno;
	}
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (de->d_type == DT_DIR)
			rm_rf_at(fd, de->d_name);
		else
			unlinkat(fd, de->d_name, 0);
	}
	closedir(d);
	return unlinkat(dirfd, name, AT_REMOVEDIR) == -1 && errno != ENOENT ? -errno : 0;
}

void empty_dir(int dirfd, const char *keep)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd == -1 ? NULL : fdopendir(fd);
	struct dirent *de;

	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    (!keep || strcmp(de->d_name, keep)))
			rm_rf_at(fd, de->d_name);
	if (d)
		closedir(d);
	else if (fd != -1)
		close(fd);
}

long sysfs_num(const char *path)
{
	char buf[32];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd == -1)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return strtol(buf, NULL, 10);
}

int sysfs_set_num(const char *path, long v)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), err = 0;

	if (fd == -1)
		return -errno;
	if (dprintf(fd, "%ld", v) < 0)
		err = errno ? -errno : -EIO;
	close(fd);
	return err;
}

long block_queue_attr(dev_t dev, const char *attr)
{
	static const char *const fmt[] = { "/sys/dev/block/%u:%u/queue/%s",
					   "/sys/dev/block/%u:%u/../queue/%s" };
	char path[128];
	long v = -1;

	if (!major(dev))
		return -1;	/* an anonymous device */
	for (unsigned i = 0; i < 2 && v < 0; i++) {
		snprintf(path, sizeof(path), fmt[i], major(dev), minor(dev), attr);
		v = sysfs_num(path);
	}
	return v;
}
