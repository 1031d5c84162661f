/*
 * log: stderr or syslog, one write per message.  Does not buffer, does not
 * rotate; syslog does that for the daemon.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

static const char *log_ident = "relocfs";
static bool log_syslog;
static volatile int log_level = LOG_LVL_INFO;

void log_init(const char *ident, bool to_syslog, int level)
{
	log_ident = ident;
	log_syslog = to_syslog;
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
		int len = snprintf(line, sizeof(line), "%s: %s\n", log_ident, buf);
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
