/*
 * proto: framing and parsing of control messages (see proto.h).  Pure code
 * but for the read/write helpers, so that it can be unit-tested and fuzzed.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "ctl/proto.h"

int ctl_hdr_check(const struct ctl_hdr *h, uint16_t type, uint32_t max)
{
	if (h->magic != CTL_MAGIC || h->version != CTL_VERSION || h->type != type)
		return -EPROTO;
	if (h->len > max)
		return -EMSGSIZE;
	return 0;
}

int ctl_split_argv(const char *buf, size_t len, const char **argv, int max)
{
	size_t pos = 0;
	int argc = 0;

	if (len == 0 || buf[len - 1] != '\0')
		return -EINVAL;
	while (pos < len) {
		size_t n = strnlen(buf + pos, len - pos);

		if (pos + n >= len || argc >= max)
			return -EINVAL;
		argv[argc++] = buf + pos;
		pos += n + 1;
	}
	return argc;
}

int ctl_join_argv(int argc, char *const *argv, char *buf, size_t len)
{
	size_t pos = 0;

	for (int i = 0; i < argc; i++) {
		size_t n = strlen(argv[i]) + 1;

		if (n > len - pos)
			return -EMSGSIZE;
		memcpy(buf + pos, argv[i], n);
		pos += n;
	}
	return (int)pos;
}

void ctl_fmt_bytes(double b, char *buf, size_t len)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int i = 0;

	while (b >= 1024 && i < 4) {
		b /= 1024;
		i++;
	}
	snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

int ctl_parse_size(const char *s, uint64_t *out)
{
	char *end;
	double v;
	double mul = 1;

	if (!s || !((*s >= '0' && *s <= '9') || *s == '.'))
		return -EINVAL;
	if (strpbrk(s, "xXpP"))
		return -EINVAL;	/* no hexadecimal */
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !isfinite(v) || v < 0)
		return -EINVAL;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': mul = 1024.0; end++; break;
	case 'm': case 'M': mul = 1024.0 * 1024; end++; break;
	case 'g': case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
	case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
	default: return -EINVAL;
	}
	if (*end == 'i') {
		if (mul == 1 || end[1] != 'B')
			return -EINVAL;
		end += 2;
	} else if (*end == 'B') {
		end++;
	}
	if (*end != '\0')
		return -EINVAL;
	v *= mul;
	if (v >= 18446744073709551615.0)
		return -EINVAL;
	*out = (uint64_t)v;
	return 0;
}

int ctl_parse_duration(const char *s, double *out)
{
	static const struct { char unit; double secs; } units[] = {
		{ 'd', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 },
	};
	size_t next = 0;	/* units[next..] may still come */
	double total = 0;

	if (!s || !*s)
		return -EINVAL;
	while (*s) {
		char *end;
		double v;
		size_t u;

		if (!((*s >= '0' && *s <= '9') || *s == '.') || strpbrk(s, "xXpPeEiInN"))
			return -EINVAL;	/* plain decimal numbers only */
		errno = 0;
		v = strtod(s, &end);
		if (errno || end == s || !isfinite(v) || v < 0)
			return -EINVAL;
		if (!*end) {
			if (next)
				return -EINVAL;	/* "1h30": the unit of 30 is not said */
			total = v;
			s = end;
			break;
		}
		for (u = next; u < sizeof(units) / sizeof(units[0]); u++)
			if (*end == units[u].unit)
				break;
		if (u == sizeof(units) / sizeof(units[0]))
			return -EINVAL;
		total += v * units[u].secs;
		next = u + 1;
		s = end + 1;
	}
	if (!(total > 0) || total > CTL_DEADLINE_MAX_S)
		return -EINVAL;
	*out = total;
	return 0;
}

bool ctl_job_name_ok(const char *s)
{
	size_t n = 0;

	if (!s || !*s || *s == '-' || *s == '.')
		return false;
	for (; s[n]; n++) {
		char c = s[n];

		if (n >= CTL_JOB_NAME_MAX)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("._-+:@", c)))
			return false;
	}
	return true;
}

static int parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 1e9)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_ms(const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v <= 0 || v > 3600 * 1000)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

static const struct {
	const char *name;
	enum ctl_cmd cmd;
} ctl_cmds[] = {
	{ "status", CTL_CMD_STATUS },	{ "migrate", CTL_CMD_MIGRATE },
	{ "wait", CTL_CMD_WAIT },	{ "cutover", CTL_CMD_CUTOVER },
	{ "abort", CTL_CMD_ABORT },	{ "verify", CTL_CMD_VERIFY },
	{ "limit", CTL_CMD_LIMIT },
	{ "restart", CTL_CMD_RESTART },
};

static int parse_int(const char *s, int max, int *out)
{
	char *end;
	long v;

	if (!(*s >= '0' && *s <= '9'))
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 0 || v > max)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

/* one line: whatever the client sent, no control characters reach the text */
static void one_line(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			*s = '?';
}

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); one_line(err); return -EINVAL; } while (0)

int ctl_parse_request(int argc, const char **argv, struct ctl_request *req,
		      char *err, size_t errlen)
{
	const char *cmd;
	int i;

	memset(req, 0, sizeof(*req));
	req->parallel = -1;
	if (argc < 1)
		FAIL("no command given");
	cmd = argv[0];
	for (size_t k = 0; k < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); k++)
		if (strcmp(cmd, ctl_cmds[k].name) == 0)
			req->cmd = ctl_cmds[k].cmd;
	if (req->cmd == 0)
		FAIL("unknown command '%.64s'", cmd);

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (a[0] != '-' || strcmp(a, "--") == 0) {
			if (strcmp(a, "--") == 0)
				i++;
			break;
		}
#define NEEDS(c) do { if (req->cmd != (c)) FAIL("option '%s' does not apply to '%s'", a, cmd); } while (0)
#define VALUE() do { if (!v || !*v) FAIL("option '%s' needs a value", a); i++; } while (0)
		if (strcmp(a, "--job") == 0) {
			VALUE();
			if (!ctl_job_name_ok(v))
				FAIL("bad job name '%.64s' (1 to %d letters, digits or ._-+:@)", v,
				     CTL_JOB_NAME_MAX);
			req->job = v;
		} else if (strcmp(a, "--priority") == 0) {
			NEEDS(CTL_CMD_MIGRATE);
			VALUE();
			if (parse_int(v, CTL_PRIORITY_MAX, &req->priority) || req->priority == 0)
				FAIL("bad priority '%.64s' (1 to %d)", v, CTL_PRIORITY_MAX);
		} else if (strcmp(a, "--deadline") == 0) {
			NEEDS(CTL_CMD_MIGRATE);
			VALUE();
			if (ctl_parse_duration(v, &req->deadline_s))
				FAIL("bad deadline '%.64s' (a duration, e.g. 90s, 45m, 2h, 1h30m)", v);
		} else if (strcmp(a, "--parallel") == 0) {
			NEEDS(CTL_CMD_LIMIT);
			VALUE();
			if (parse_int(v, CTL_PARALLEL_MAX, &req->parallel))
				FAIL("bad parallel '%.64s' (0 to %d jobs, 0: no limit)", v,
				     CTL_PARALLEL_MAX);
		} else if (strcmp(a, "--json") == 0) {
			NEEDS(CTL_CMD_STATUS);
			req->json = true;
		} else if (strcmp(a, "--to") == 0) {
			NEEDS(CTL_CMD_MIGRATE);
			VALUE();
			req->to = v;
		} else if (strcmp(a, "--delta-dir") == 0) {
			NEEDS(CTL_CMD_MIGRATE);
			VALUE();
			req->delta_dir = v;
		} else if (strcmp(a, "--rate") == 0) {
			NEEDS(CTL_CMD_MIGRATE);
			VALUE();
			if (ctl_parse_size(v, &req->rate) || req->rate == 0)
				FAIL("bad rate '%.64s' (bytes per second, e.g. 100M)", v);
		} else if (strcmp(a, "--timeout") == 0) {
			if (req->cmd != CTL_CMD_WAIT && req->cmd != CTL_CMD_CUTOVER &&
			    req->cmd != CTL_CMD_RESTART)
				FAIL("option '%s' does not apply to '%s'", a, cmd);
			VALUE();
			if (parse_seconds(v, &req->timeout_s))
				FAIL("bad timeout '%.64s' (seconds)", v);
		} else if (strcmp(a, "--max-downtime") == 0) {
			NEEDS(CTL_CMD_CUTOVER);
			VALUE();
			if (parse_ms(v, &req->max_downtime_ms))
				FAIL("bad max-downtime '%.64s' (milliseconds)", v);
		} else if (strcmp(a, "--hook") == 0) {
			NEEDS(CTL_CMD_CUTOVER);
			VALUE();
			if (req->nhooks >= CTL_HOOKS_MAX)
				FAIL("too many hooks (at most %d)", CTL_HOOKS_MAX);
			req->hooks[req->nhooks++] = v;
		} else if (strcmp(a, "--remove-source") == 0) {
			NEEDS(CTL_CMD_CUTOVER);
			req->remove_source = true;
		} else if (strcmp(a, "--force") == 0) {
			if (req->cmd != CTL_CMD_CUTOVER && req->cmd != CTL_CMD_ABORT)
				FAIL("option '%s' does not apply to '%s'", a, cmd);
			req->force = true;
		} else if (strcmp(a, "--exec") == 0) {
			NEEDS(CTL_CMD_RESTART);
			VALUE();
			if (v[0] != '/')
				FAIL("'%.64s' must be an absolute path", v);
			req->exec_path = v;
		} else {
			FAIL("unknown option '%.64s' for '%s'", a, cmd);
		}
#undef NEEDS
#undef VALUE
	}
	if (req->cmd == CTL_CMD_LIMIT && i < argc) {
		if (i + 1 < argc)
			FAIL("limit takes one BYTES_PER_S");
		if (ctl_parse_size(argv[i], &req->limit))
			FAIL("bad limit '%.64s' (bytes per second, e.g. 40M; 0: none)", argv[i]);
		req->has_limit = true;
		i++;
	}
	for (; i < argc; i++) {
		if (req->cmd != CTL_CMD_MIGRATE)
			FAIL("'%s' takes no file arguments", cmd);
		if (!*argv[i])
			FAIL("empty file name");
		if (req->nfiles >= CTL_FILES_MAX)
			FAIL("too many files (at most %d)", CTL_FILES_MAX);
		req->files[req->nfiles++] = argv[i];
	}
	if (req->cmd == CTL_CMD_MIGRATE && !req->to)
		FAIL("migrate needs --to DEST_DIR");
	if (req->cmd == CTL_CMD_LIMIT && req->job && req->parallel >= 0)
		FAIL("--parallel is the mount's, not a job's: give it without --job");
	if (req->cmd == CTL_CMD_LIMIT && req->job && !req->has_limit)
		FAIL("limit --job NAME needs BYTES_PER_S");
	return 0;
}

int ctl_socket_path(const char *mountpoint, char *out, size_t len)
{
	const char *dir = getenv("RELOCFS_RUNDIR");
	uint64_t h = XXH3_64bits(mountpoint, strlen(mountpoint));
	int n;

	if (!dir || !*dir)
		dir = CTL_RUNDIR;
	n = snprintf(out, len, "%s/%016" PRIx64 ".sock", dir, h);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

int ctl_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int ctl_read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = read(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int ctl_send(int fd, uint16_t type, int32_t status, const void *payload, uint32_t len)
{
	struct ctl_hdr h = {
		.magic = CTL_MAGIC, .version = CTL_VERSION, .type = type,
		.len = len, .status = status,
	};
	int ret = ctl_write_all(fd, &h, sizeof(h));

	if (ret == 0 && len)
		ret = ctl_write_all(fd, payload, len);
	return ret;
}

int ctl_recv(int fd, uint16_t type, uint32_t max, struct ctl_hdr *h, char **payload)
{
	char *p;
	int ret;

	*payload = NULL;
	ret = ctl_read_all(fd, h, sizeof(*h));
	if (ret)
		return ret;
	ret = ctl_hdr_check(h, type, max);
	if (ret)
		return ret;
	p = malloc((size_t)h->len + 1);
	if (!p)
		return -ENOMEM;
	ret = h->len ? ctl_read_all(fd, p, h->len) : 0;
	if (ret) {
		free(p);
		return ret;
	}
	p[h->len] = '\0';
	*payload = p;
	return 0;
}
