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

	sb_printf(&b, "relocfs-state 1\nroot");
	sb_path(&b, st->root);
	sb_printf(&b, "\nlast-cutover-us %" PRIu64 "\n", st->last_cutover_us);
	for (size_t i = 0; i < st->noverrides; i++) {
		sb_printf(&b, "override");
		sb_path(&b, st->overrides[i].relpath);
		sb_path(&b, st->overrides[i].backend);
		sb_printf(&b, "\n");
	}
	if (st->job) {
		sb_printf(&b, "job %" PRIu64 " %s", st->job_id, st->tree ? "tree" : "files");
		sb_path(&b, st->dest);
		sb_path(&b, st->delta_dir);
		sb_printf(&b, " %" PRIu64 "\n", st->rate);
		for (size_t i = 0; i < st->nfiles; i++) {
			sb_printf(&b, "file %zu", i);
			sb_path(&b, st->files[i]);
			sb_printf(&b, "\n");
		}
		if (st->handoff != MS_HANDOFF_NONE) {
			sb_printf(&b, "handoff %s",
				  st->handoff == MS_HANDOFF_RECORDED ? "recorded" : "started");
			sb_path(&b, st->handoff_spec ? st->handoff_spec : "");
			sb_path(&b, st->handoff_vm ? st->handoff_vm : "");
			sb_printf(&b, " %d\n", st->handoff_remove_source ? 1 : 0);
		}
	}
	for (size_t i = 0; i < st->nsealed; i++) {
		sb_printf(&b, "sealed");
		sb_path(&b, st->sealed[i].relpath);
		sb_path(&b, st->sealed[i].to);
		sb_path(&b, st->sealed[i].vm);
		sb_printf(&b, "\n");
	}
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
	(*n)++;
	return 0;
}

int ms_parse(const char *text, struct mount_state *st)
{
	const char *sum = strstr(text, "sum ");
	char *copy = NULL, *line, *save = NULL;
	uint64_t want;
	int err = -EBADMSG;

	memset(st, 0, sizeof(*st));
	while (sum && sum != text && sum[-1] != '\n')
		sum = strstr(sum + 1, "sum ");
	if (!sum || sscanf(sum, "sum %" SCNx64, &want) != 1 ||
	    XXH3_64bits(text, (size_t)(sum - text)) != want)
		return -EBADMSG;
	copy = strndup(text, (size_t)(sum - text));
	if (!copy)
		return -ENOMEM;
	bool first = true;

	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *f[8], *tsave = NULL, *t;
		int n = 0;
		size_t idx;
		char *end;

		/* fields are separated by single spaces; paths are encoded, so
		 * they hold none, however long they are */
		for (t = strtok_r(line, " ", &tsave); t; t = strtok_r(NULL, " ", &tsave)) {
			if (n == 8)
				goto bad;
			f[n++] = t;
		}
		if (n < 1)
			goto bad;
		/* numbers are plain decimal: no sign, no blanks */
		for (int k = 1; k < n; k++)
			if (!strcmp(f[0], "job") && (k == 1 || k == 5) && !(f[k][0] >= '0' && f[k][0] <= '9'))
				goto bad;
		if (first != !strcmp(f[0], "relocfs-state"))
			goto bad;	/* the version line comes first, once */
		first = false;
		if (!strcmp(f[0], "relocfs-state")) {
			if (n != 2 || strcmp(f[1], "1"))
				goto bad;
		} else if (!strcmp(f[0], "root") && n == 2) {
			if (st->root || !(st->root = ms_decode(f[1])))
				goto bad;
		} else if (!strcmp(f[0], "last-cutover-us") && n == 2) {
			if (!(f[1][0] >= '0' && f[1][0] <= '9'))
				goto bad;
			st->last_cutover_us = strtoull(f[1], &end, 10);
			if (*end)
				goto bad;
		} else if (!strcmp(f[0], "override") && n == 3) {
			if (push((void **)&st->overrides, &st->noverrides, sizeof(*st->overrides)))
				goto oom;
			st->overrides[st->noverrides - 1].relpath = ms_decode(f[1]);
			st->overrides[st->noverrides - 1].backend = ms_decode(f[2]);
			if (!st->overrides[st->noverrides - 1].relpath ||
			    !st->overrides[st->noverrides - 1].backend)
				goto bad;
		} else if (!strcmp(f[0], "job") && n == 6) {
			if (st->job || (strcmp(f[2], "tree") && strcmp(f[2], "files")))
				goto bad;
			st->job = true;
			st->job_id = strtoull(f[1], &end, 10);
			if (*end)
				goto bad;
			st->tree = !strcmp(f[2], "tree");
			st->rate = strtoull(f[5], &end, 10);
			if (*end)
				goto bad;
			st->dest = ms_decode(f[3]);
			st->delta_dir = ms_decode(f[4]);
			if (!st->dest || !st->delta_dir)
				goto bad;
		} else if (!strcmp(f[0], "file") && n == 3) {
			if (!st->job || !(f[1][0] >= '0' && f[1][0] <= '9'))
				goto bad;
			idx = strtoul(f[1], &end, 10);
			if (*end || idx != st->nfiles)
				goto bad;
			if (push((void **)&st->files, &st->nfiles, sizeof(*st->files)))
				goto oom;
			if (!(st->files[idx] = ms_decode(f[2])))
				goto bad;
		} else if (!strcmp(f[0], "handoff") && n == 5) {
			if (!st->job || st->handoff != MS_HANDOFF_NONE ||
			    (strcmp(f[4], "0") && strcmp(f[4], "1")))
				goto bad;
			if (!strcmp(f[1], "started"))
				st->handoff = MS_HANDOFF_STARTED;
			else if (!strcmp(f[1], "recorded"))
				st->handoff = MS_HANDOFF_RECORDED;
			else
				goto bad;
			st->handoff_remove_source = f[4][0] == '1';
			if (!(st->handoff_spec = ms_decode(f[2])) || !(st->handoff_vm = ms_decode(f[3])))
				goto bad;
		} else if (!strcmp(f[0], "sealed") && n == 4) {
			struct ms_sealed *x;

			if (push((void **)&st->sealed, &st->nsealed, sizeof(*st->sealed)))
				goto oom;
			x = &st->sealed[st->nsealed - 1];
			*x = (struct ms_sealed){ ms_decode(f[1]), ms_decode(f[2]), ms_decode(f[3]) };
			if (!x->relpath || !x->to || !x->vm)
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
bad:
	free(copy);
	ms_free(st);
	return err;
}

int ms_load(int dirfd, struct mount_state *st)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd = openat(dirfd, "state", O_RDONLY | O_CLOEXEC), err;

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

int ms_save(int dirfd, const struct mount_state *st)
{
	int err = ms_write(dirfd, "state.tmp", st);

	if (!err && renameat(dirfd, "state.tmp", dirfd, "state") == -1)
		err = -errno;
	if (!err && fsync(dirfd) == -1)
		err = -errno;
	return err;
}

void ms_free(struct mount_state *st)
{
	free(st->root);
	for (size_t i = 0; i < st->noverrides; i++) {
		free(st->overrides[i].relpath);
		free(st->overrides[i].backend);
	}
	free(st->overrides);
	free(st->dest);
	free(st->delta_dir);
	for (size_t i = 0; i < st->nfiles; i++)
		free(st->files[i]);
	free(st->files);
	free(st->handoff_spec);
	free(st->handoff_vm);
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
