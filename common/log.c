/*
 * log: stderr or syslog, one write per message.  Does not buffer, does not
 * rotate; syslog does that for the daemon.
 *
 * When stderr is the journal's stream (systemd sets JOURNAL_STREAM to its
 * device and inode for a service), each line starts with the message's
 * syslog priority as "<4>", which journald takes as the priority and
 * strips; the identifier and pid are the journal's to add.  This is how the
 * daemon logs under relocfs@.service, which runs it in the foreground: one
 * ordered stream with libfuse's own messages, attributed to the unit, with
 * the priorities that journalctl -p filters on.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

static const char *log_ident = "relocfs";
static bool log_syslog;
static bool log_journal;	/* stderr is the journal: "<prio>" prefixes */
static volatile int log_level = LOG_LVL_INFO;

/* JOURNAL_STREAM is "DEV:INODE" of the stream systemd connected; a child
 * whose stderr was redirected elsewhere inherits the variable, hence the
 * comparison */
static bool stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) == -1)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(const char *ident, bool to_syslog, int level)
{
	log_ident = ident;
	log_syslog = to_syslog;
	log_journal = !to_syslog && stderr_is_journal();
	log_level = level;
	if (to_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_set_level(int level)
{
	log_level = level;
}

static void log_vemit(int prio, int lvl, const char *fmt, va_list ap, int err)
{
	char buf[1024];
	int n;

	if (lvl > log_level)
		return;
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	if (err)
		snprintf(buf + n, sizeof(buf) - n, ": %s", strerror(err));
	if (log_syslog) {
		syslog(prio, "%s", buf);
	} else {
		char line[1200];
		int len = log_journal ? snprintf(line, sizeof(line), "<%d>%s\n", prio, buf)
				      : snprintf(line, sizeof(line), "%s: %s\n", log_ident, buf);
		if (len > 0)
			(void)!write(STDERR_FILENO, line,
				     (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1);
	}
}

void log_warn(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_WARNING, LOG_LVL_WARN, fmt, ap, err ? err : EIO);
	va_end(ap);
	errno = err;
}

void log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_WARNING, LOG_LVL_WARN, fmt, ap, 0);
	va_end(ap);
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_INFO, LOG_LVL_INFO, fmt, ap, 0);
	va_end(ap);
}

void log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_DEBUG, LOG_LVL_DEBUG, fmt, ap, 0);
	va_end(ap);
}

bool log_ratelimited(long *last)
{
	long now = (long)time(NULL);

	if (__atomic_load_n(last, __ATOMIC_RELAXED) == now)
		return false;
	__atomic_store_n(last, now, __ATOMIC_RELAXED);
	return true;
}
