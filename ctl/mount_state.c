/*
 * mount_state: read and write the mount's record (see mount_state.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "ctl/mount_state.h"

char *ms_encode(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(n * 3 + 2), *p = out;

	if (!out)
		return NULL;
	if (n == 0) {
		strcpy(out, "%");	/* an empty field still takes a place */
		return out;
	}
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c <= 0x20 || *c >= 0x7f || *c == '%')
			p += sprintf(p, "%%%02X", *c);
		else
			*p++ = (char)*c;
	}
	*p = '\0';
	return out;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

char *ms_decode(const char *s)
{
	char *out = malloc(strlen(s) + 1), *p = out;

	if (!out)
		return NULL;
	if (strcmp(s, "%") == 0) {
		*out = '\0';
		return out;
	}
	while (*s) {
		if (*s == '%') {
			int h = hexval(s[1]), l = h < 0 ? -1 : hexval(s[2]);

			if (h < 0 || l < 0 || (h == 0 && l == 0)) {
				free(out);
				return NULL;
			}
			*p++ = (char)(h * 16 + l);
			s += 3;
		} else if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f) {
			free(out);	/* ms_encode never leaves these raw */
			return NULL;
		} else {
			*p++ = *s++;
		}
	}
	*p = '\0';
	return out;
}

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if (b->p && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t ncap = (b->cap ? b->cap * 2 : 1024) + (size_t)n;
		char *np = realloc(b->p, ncap);

		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
}

static void sb_path(struct sbuf *b, const char *s)
{
	char *e = ms_encode(s);

	if (!e) {
		b->oom = true;
		return;
	}
	sb_printf(b, " %s", e);
	free(e);
}

char *ms_format(const struct mount_state *st)
{
	struct sbuf b = { 0 };

	sb_printf(&b, "relocfs-state " MS_VERSION_STR "\nroot");
	sb_path(&b, st->root);
	sb_printf(&b, "\nlast-cutover-us %" PRIu64 "\n", st->last_cutover_us);
	sb_printf(&b, "budget %" PRIu64 "\nparallel %u\n", st->budget, st->parallel);
	for (size_t i = 0; i < st->noverrides; i++) {
		sb_printf(&b, "override");
		sb_path(&b, st->overrides[i].relpath);
		sb_path(&b, st->overrides[i].backend);
		sb_printf(&b, "\n");
	}
	for (size_t k = 0; k < st->njobs; k++) {
		const struct ms_job *j = &st->jobs[k];

		sb_printf(&b, "job %" PRIu64 " %s %s", j->id, j->tree ? "tree" : "files",
			  j->queued ? "queued" : "started");
		sb_path(&b, j->name);
		sb_path(&b, j->dest);
		sb_path(&b, j->delta_dir);
		sb_printf(&b, " %" PRIu64 " %u %" PRIu64 " %" PRIu64 "\n", j->rate, j->priority,
			  j->since_ms, j->deadline_ms);
		for (size_t i = 0; i < j->nfiles; i++) {
			sb_printf(&b, "file %zu", i);
			sb_path(&b, j->files[i]);
			sb_printf(&b, "\n");
		}
		if (j->handoff != MS_HANDOFF_NONE) {
			sb_printf(&b, "handoff %s",
				  j->handoff == MS_HANDOFF_RECORDED ? "recorded" : "started");
			sb_path(&b, j->handoff_spec ? j->handoff_spec : "");
			sb_path(&b, j->handoff_vm ? j->handoff_vm : "");
			sb_printf(&b, " %d\n", j->handoff_remove_source ? 1 : 0);
		}
	}
	for (size_t i = 0; i < st->nsealed; i++) {
		sb_printf(&b, "sealed");
		sb_path(&b, st->sealed[i].relpath);
		sb_path(&b, st->sealed[i].to);
		sb_path(&b, st->sealed[i].vm);
		sb_printf(&b, "\n");
	}
	if (st->cutover_job)
		sb_printf(&b, "cutover %" PRIu64 "\n", st->cutover_job);
	for (size_t i = 0; i < st->ncleanup; i++) {
		sb_printf(&b, "cleanup");
		sb_path(&b, st->cleanup[i]);
		sb_printf(&b, "\n");
	}
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	sb_printf(&b, "sum %016" PRIx64 "\n", XXH3_64bits(b.p, b.len));
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

static int push(void **arr, size_t *n, size_t elem)
{
	void *p = realloc(*arr, (*n + 1) * elem);

	if (!p)
		return -ENOMEM;
	*arr = p;
	memset((char *)p + *n * elem, 0, elem);
	(*n)++;
	return 0;
}

/* A number as the record writes it: plain decimal, no sign, no blanks. */
static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!(*s >= '0' && *s <= '9'))
		return false;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return !*end && !errno;
}

/* "job" lines: version 1 (ID KIND DEST DELTA RATE), versions 2 and 3 (see the
 * header).  Fills a new entry of st->jobs. */
static int parse_job(struct mount_state *st, int version, char **f, int n)
{
	struct ms_job *j;
	uint64_t v;
	int k = 2;

	if (version == 1 ? (n != 6 || st->njobs) : n != 11)
		return -EBADMSG;
	if (push((void **)&st->jobs, &st->njobs, sizeof(*st->jobs)))
		return -ENOMEM;
	j = &st->jobs[st->njobs - 1];
	if (!parse_u64(f[1], &j->id))
		return -EBADMSG;
	if (strcmp(f[k], "tree") && strcmp(f[k], "files"))
		return -EBADMSG;
	j->tree = !strcmp(f[k++], "tree");
	if (version == 1) {
		j->name = strdup("");
	} else {
		if (strcmp(f[k], "queued") && strcmp(f[k], "started"))
			return -EBADMSG;
		j->queued = !strcmp(f[k++], "queued");
		j->name = ms_decode(f[k++]);
	}
	j->dest = ms_decode(f[k++]);
	j->delta_dir = ms_decode(f[k++]);
	if (!j->name || !j->dest || !j->delta_dir || !parse_u64(f[k++], &j->rate))
		return -EBADMSG;
	if (version == 1)
		return 0;
	if (!parse_u64(f[k++], &v) || v > 0xffffffffu)
		return -EBADMSG;
	j->priority = (unsigned)v;
	if (!parse_u64(f[k++], &j->since_ms) || !parse_u64(f[k++], &j->deadline_ms))
		return -EBADMSG;
	return 0;
}

/* A "handoff" line: the job above, started, with none yet and no file
 * after it. */
static int parse_handoff(struct mount_state *st, char **f, int n)
{
	struct ms_job *j = st->njobs ? &st->jobs[st->njobs - 1] : NULL;

	if (n != 5 || !j || j->queued || j->handoff != MS_HANDOFF_NONE ||
	    (strcmp(f[4], "0") && strcmp(f[4], "1")))
		return -EBADMSG;
	if (!strcmp(f[1], "started"))
		j->handoff = MS_HANDOFF_STARTED;
	else if (!strcmp(f[1], "recorded"))
		j->handoff = MS_HANDOFF_RECORDED;
	else
		return -EBADMSG;
	j->handoff_remove_source = f[4][0] == '1';
	if (!(j->handoff_spec = ms_decode(f[2])) || !(j->handoff_vm = ms_decode(f[3])))
		return -EBADMSG;
	return 0;
}

#define MS_FIELDS_MAX 12

int ms_parse(const char *text, struct mount_state *st)
{
	const char *sum = strstr(text, "sum ");
	char *copy = NULL, *line, *save = NULL;
	uint64_t want, v;
	int err = -EBADMSG, version = 0;

	memset(st, 0, sizeof(*st));
	while (sum && sum != text && sum[-1] != '\n')
		sum = strstr(sum + 1, "sum ");
	if (!sum || sscanf(sum, "sum %" SCNx64, &want) != 1 ||
	    XXH3_64bits(text, (size_t)(sum - text)) != want)
		return -EBADMSG;
	copy = strndup(text, (size_t)(sum - text));
	if (!copy)
		return -ENOMEM;
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *f[MS_FIELDS_MAX], *tsave = NULL, *t;
		int n = 0;

		/* fields are separated by single spaces; paths are encoded, so
		 * they hold none, however long they are */
		for (t = strtok_r(line, " ", &tsave); t; t = strtok_r(NULL, " ", &tsave)) {
			if (n == MS_FIELDS_MAX)
				goto bad;
			f[n++] = t;
		}
		if (n < 1)
			goto bad;
		if (!version != !strcmp(f[0], "relocfs-state"))
			goto bad;	/* the version line comes first, once */
		if (!strcmp(f[0], "relocfs-state")) {
			if (n != 2 || f[1][0] < '1' || f[1][0] > '0' + MS_VERSION || f[1][1])
				goto bad;
			version = f[1][0] - '0';
		} else if (!strcmp(f[0], "root") && n == 2) {
			if (st->root || !(st->root = ms_decode(f[1])))
				goto bad;
		} else if (!strcmp(f[0], "last-cutover-us") && n == 2) {
			if (!parse_u64(f[1], &st->last_cutover_us))
				goto bad;
		} else if (!strcmp(f[0], "budget") && n == 2 && version >= 2) {
			if (!parse_u64(f[1], &st->budget))
				goto bad;
		} else if (!strcmp(f[0], "parallel") && n == 2 && version >= 2) {
			if (!parse_u64(f[1], &v) || v > 0xffffffffu)
				goto bad;
			st->parallel = (unsigned)v;
		} else if (!strcmp(f[0], "override") && n == 3) {
			if (push((void **)&st->overrides, &st->noverrides, sizeof(*st->overrides)))
				goto oom;
			st->overrides[st->noverrides - 1].relpath = ms_decode(f[1]);
			st->overrides[st->noverrides - 1].backend = ms_decode(f[2]);
			if (!st->overrides[st->noverrides - 1].relpath ||
			    !st->overrides[st->noverrides - 1].backend)
				goto bad;
		} else if (!strcmp(f[0], "job")) {
			err = parse_job(st, version, f, n);
			if (err)
				goto out;
			err = -EBADMSG;
		} else if (!strcmp(f[0], "file") && n == 3) {
			struct ms_job *j = st->njobs ? &st->jobs[st->njobs - 1] : NULL;

			if (!j || j->handoff != MS_HANDOFF_NONE || !parse_u64(f[1], &v) ||
			    v != j->nfiles)
				goto bad;
			if (push((void **)&j->files, &j->nfiles, sizeof(*j->files)))
				goto oom;
			if (!(j->files[v] = ms_decode(f[2])))
				goto bad;
		} else if (!strcmp(f[0], "handoff") && version >= 3) {
			err = parse_handoff(st, f, n);
			if (err)
				goto out;
			err = -EBADMSG;
		} else if (!strcmp(f[0], "sealed") && n == 4 && version >= 3) {
			struct ms_sealed *x;

			if (push((void **)&st->sealed, &st->nsealed, sizeof(*st->sealed)))
				goto oom;
			x = &st->sealed[st->nsealed - 1];
			x->relpath = ms_decode(f[1]);
			x->to = ms_decode(f[2]);
			x->vm = ms_decode(f[3]);
			if (!x->relpath || !x->to || !x->vm)
				goto bad;
		} else if (!strcmp(f[0], "cutover") && n == 2 && version >= 2) {
			if (st->cutover_job || !parse_u64(f[1], &st->cutover_job) || !st->cutover_job)
				goto bad;
		} else if (!strcmp(f[0], "cleanup") && n == 2) {
			if (push((void **)&st->cleanup, &st->ncleanup, sizeof(*st->cleanup)))
				goto oom;
			if (!(st->cleanup[st->ncleanup - 1] = ms_decode(f[1])))
				goto bad;
		} else {
			goto bad;
		}
	}
	if (!st->root)
		goto bad;
	free(copy);
	return 0;
oom:
	err = -ENOMEM;
	goto out;
bad:
	err = -EBADMSG;
out:
	free(copy);
	ms_free(st);
	return err;
}

int ms_load(int dirfd, struct mount_state *st)
{
	return ms_load_named(dirfd, "state", st);
}

int ms_load_named(int dirfd, const char *name, struct mount_state *st)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC), err;

	if (fd == -1)
		return -errno;
	for (;;) {
		ssize_t r;

		if (len + 4096 + 1 > cap) {
			char *nb = realloc(buf, cap = cap * 2 + 8192);

			if (!nb) {
				free(buf);
				close(fd);
				return -ENOMEM;
			}
			buf = nb;
		}
		r = read(fd, buf + len, cap - len - 1);
		if (r < 0) {
			err = -errno;
			free(buf);
			close(fd);
			return err;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	err = ms_parse(buf, st);
	free(buf);
	return err;
}

int ms_write(int dirfd, const char *name, const struct mount_state *st)
{
	char *text = ms_format(st);
	size_t len;
	int fd, err = 0;

	if (!text)
		return -ENOMEM;
	len = strlen(text);
	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1) {
		err = -errno;
		goto out;
	}
	if (write(fd, text, len) != (ssize_t)len)
		err = errno ? -errno : -EIO;
	if (!err && fsync(fd) == -1)
		err = -errno;
	close(fd);
out:
	free(text);
	return err;
}

int ms_replace(int dirfd, const char *name, const struct mount_state *st)
{
	char tmp[64];
	int err;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", name) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	err = ms_write(dirfd, tmp, st);
	if (!err && renameat(dirfd, tmp, dirfd, name) == -1)
		err = -errno;
	if (!err && fsync(dirfd) == -1)
		err = -errno;
	return err;
}

int ms_save(int dirfd, const struct mount_state *st)
{
	return ms_replace(dirfd, "state", st);
}

void ms_job_free(struct ms_job *j)
{
	free(j->name);
	free(j->dest);
	free(j->delta_dir);
	for (size_t i = 0; i < j->nfiles; i++)
		free(j->files[i]);
	free(j->files);
	free(j->handoff_spec);
	free(j->handoff_vm);
	memset(j, 0, sizeof(*j));
}

struct ms_job *ms_find_job(const struct mount_state *st, uint64_t id)
{
	for (size_t k = 0; k < st->njobs; k++)
		if (st->jobs[k].id == id)
			return &st->jobs[k];
	return NULL;
}

void ms_drop_job(struct mount_state *st, uint64_t id)
{
	struct ms_job *j = ms_find_job(st, id);
	size_t k;

	if (!j)
		return;
	k = (size_t)(j - st->jobs);
	ms_job_free(j);
	memmove(&st->jobs[k], &st->jobs[k + 1], (st->njobs - k - 1) * sizeof(*j));
	st->njobs--;
}

void ms_free(struct mount_state *st)
{
	free(st->root);
	for (size_t i = 0; i < st->noverrides; i++) {
		free(st->overrides[i].relpath);
		free(st->overrides[i].backend);
	}
	free(st->overrides);
	for (size_t k = 0; k < st->njobs; k++)
		ms_job_free(&st->jobs[k]);
	free(st->jobs);
	for (size_t i = 0; i < st->nsealed; i++) {
		free(st->sealed[i].relpath);
		free(st->sealed[i].to);
		free(st->sealed[i].vm);
	}
	free(st->sealed);
	for (size_t i = 0; i < st->ncleanup; i++)
		free(st->cleanup[i]);
	free(st->cleanup);
	memset(st, 0, sizeof(*st));
}
