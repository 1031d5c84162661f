/*
 * log: one small logging module for the daemon and relocctl.
 *
 * stderr while in the foreground (with "<N>" priority prefixes when stderr
 * is the journal, under systemd), syslog once daemonized.  Thread-safe (each
 * message is formatted into one buffer and written with one call).  The
 * verbosity can change at run time (relocctl has no command for it yet; the
 * daemon's -o debug sets it at start).  log_ratelimited() keeps the I/O path
 * from flooding the log when storage fails.
 */
#ifndef RELOCFS_LOG_H
#define RELOCFS_LOG_H

#include <stdbool.h>

enum log_level { LOG_LVL_WARN = 0, LOG_LVL_INFO = 1, LOG_LVL_DEBUG = 2 };

void log_init(const char *ident, bool to_syslog, int level);
void log_set_level(int level);

/* log_warn appends ": strerror(errno)"; log_warnx does not */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* true at most once a second per call site that owns *last (a time_t) */
bool log_ratelimited(long *last);

#endif
