/*
 * service: readiness and the descriptor store for systemd (see service.h).
 *
 * It talks to the service manager only through libsystemd's sd_notify
 * family, which does nothing when NOTIFY_SOCKET is unset, so the daemon
 * behaves the same under mount(8), a shell or the tests.  It does not
 * decide anything about the mount; it reports and, at start, clears away
 * what a dead predecessor left in the store.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "common/log.h"
#include "daemon/service.h"

/* mountinfo escapes space, tab, newline and backslash as \ooo */
static void unescape_octal(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

/* The topmost mount at mnt is a relocfs one: true, and its device minor,
 * which names the connection in /sys/fs/fuse/connections/.  Reads
 * /proc/self/mountinfo only: a stat of the mountpoint would wait on the dead
 * connection.  A mount stacked on another is listed after it. */
static bool top_mount_is_relocfs(const char *mnt, unsigned *minor)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char *line = NULL;
	size_t cap = 0;
	bool relocfs = false;

	if (!f)
		return false;
	while (getline(&line, &cap, f) > 0) {
		char point[4096], fstype[256];
		unsigned maj, min;
		const char *sep = strstr(line, " - ");

		if (!sep || sscanf(line, "%*s %*s %u:%u %*s %4095s", &maj, &min, point) != 3 ||
		    sscanf(sep + 3, "%255s", fstype) != 1)
			continue;
		unescape_octal(point);
		if (strcmp(point, mnt) != 0)
			continue;
		relocfs = strcmp(fstype, "fuse.relocfs") == 0;
		*minor = min;
	}
	free(line);
	fclose(f);
	return relocfs;
}

/* Abort the connection at once, as the kernel would when its last
 * descriptor closes (the manager closes its copy when it gets to it). */
static void abort_connection(unsigned minor)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%u/abort", minor);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd == -1)
		return;	/* fusectl not mounted: closing the descriptors will do */
	if (write(fd, "1", 1) != 1)
		log_warn("cannot abort the stored FUSE connection %u", minor);
	close(fd);
}

void svc_drop_stored_connection(const char *mnt)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names);
	bool stored = false;
	unsigned minor = 0;

	for (int i = 0; i < n; i++) {
		if (names && names[i] && strcmp(names[i], SVC_FUSE_FDNAME) == 0)
			stored = true;
		close(SD_LISTEN_FDS_START + i);
	}
	if (names)
		for (int i = 0; i < n; i++)
			free(names[i]);
	free(names);
	if (!stored)
		return;
	sd_notify(0, "FDSTOREREMOVE=1\nFDNAME=" SVC_FUSE_FDNAME);
	if (!top_mount_is_relocfs(mnt, &minor)) {
		log_info("dropped a stored FUSE connection; '%s' is not a relocfs mount", mnt);
		return;
	}
	abort_connection(minor);
	if (umount2(mnt, MNT_DETACH) == -1) {
		log_warn("cannot detach the dead mount at '%s'", mnt);
		return;
	}
	log_warnx("the connection kept for '%s' cannot be taken over by this relocfs: "
		  "dropped it and detached its mount (files open on it fail); mounting anew", mnt);
}

void svc_ready(const char *mnt, int fuse_fd)
{
	if (!getenv("NOTIFY_SOCKET"))
		return;
	if (fuse_fd >= 0 &&
	    sd_pid_notify_with_fds(0, 0, "FDSTORE=1\nFDNAME=" SVC_FUSE_FDNAME, &fuse_fd, 1) <= 0)
		log_warnx("cannot hand the FUSE connection to the service manager");
	if (sd_notifyf(0, "READY=1\nSTATUS=serving '%s'", mnt) <= 0)
		log_warnx("cannot tell the service manager that '%s' serves", mnt);
}

void svc_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=unmounting");
}
