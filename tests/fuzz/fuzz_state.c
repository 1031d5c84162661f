/*
 * fuzz_state: libFuzzer target for the mount's record (ctl/mount_state.c),
 * the text the daemon trusts at start-up to know where each file lives.
 *
 * An input is a record, taken two ways:
 *   - as it is, so that damage to the sum line and around it is tried;
 *   - with its "sum" line (and all after it) replaced by a correct one, so
 *     that the parser behind the checksum is reached at all.
 * For each, ms_parse must return 0, -EBADMSG or -ENOMEM; and if it accepts:
 *   - the state is well formed (a root, each job's name and directories,
 *     its files);
 *   - ms_format of it parses back to the very same state, and formatting
 *     that gives the same text (what the daemon saves, it can load).
 * The input as a C string also goes through ms_encode / ms_decode: decode
 * of encode is the identity, encode never emits a byte the record format
 * splits on, and whatever decode accepts encodes to something that decodes
 * back to it.
 * A broken invariant aborts, which libFuzzer reports as a crash.
 *
 * Built and run by tests/fuzz/run.sh; not part of the unit build.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "ctl/mount_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "fuzz_state: %s:%d: invariant '%s' broken\n", \
			__FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool job_equal(const struct ms_job *a, const struct ms_job *b)
{
	if (a->id != b->id || a->tree != b->tree || a->queued != b->queued ||
	    !str_eq(a->name, b->name) || !str_eq(a->dest, b->dest) ||
	    !str_eq(a->delta_dir, b->delta_dir) || a->rate != b->rate ||
	    a->priority != b->priority || a->since_ms != b->since_ms ||
	    a->deadline_ms != b->deadline_ms || a->nfiles != b->nfiles)
		return false;
	for (size_t i = 0; i < a->nfiles; i++)
		if (!str_eq(a->files[i], b->files[i]))
			return false;
	return true;
}

/* every field */
static bool state_equal(const struct mount_state *a, const struct mount_state *b)
{
	if (!str_eq(a->root, b->root) || a->last_cutover_us != b->last_cutover_us ||
	    a->budget != b->budget || a->parallel != b->parallel ||
	    a->cutover_job != b->cutover_job || a->noverrides != b->noverrides ||
	    a->njobs != b->njobs || a->ncleanup != b->ncleanup)
		return false;
	for (size_t i = 0; i < a->noverrides; i++)
		if (!str_eq(a->overrides[i].relpath, b->overrides[i].relpath) ||
		    !str_eq(a->overrides[i].backend, b->overrides[i].backend))
			return false;
	for (size_t k = 0; k < a->njobs; k++)
		if (!job_equal(&a->jobs[k], &b->jobs[k]))
			return false;
	for (size_t i = 0; i < a->ncleanup; i++)
		if (!str_eq(a->cleanup[i], b->cleanup[i]))
			return false;
	return true;
}

static void check_record(const char *text)
{
	struct mount_state st, back;
	char *out, *again;
	int r = ms_parse(text, &st);

	CHECK(r == 0 || r == -EBADMSG || r == -ENOMEM);
	if (r != 0) {
		CHECK(st.root == NULL && st.noverrides == 0 && st.njobs == 0);
		return;
	}
	CHECK(st.root != NULL);
	for (size_t k = 0; k < st.njobs; k++) {
		CHECK(st.jobs[k].name && st.jobs[k].dest && st.jobs[k].delta_dir);
		for (size_t i = 0; i < st.jobs[k].nfiles; i++)
			CHECK(st.jobs[k].files[i]);
	}
	for (size_t i = 0; i < st.noverrides; i++)
		CHECK(st.overrides[i].relpath && st.overrides[i].backend);
	for (size_t i = 0; i < st.ncleanup; i++)
		CHECK(st.cleanup[i]);

	out = ms_format(&st);
	if (!out) {
		ms_free(&st);
		return;		/* out of memory */
	}
	r = ms_parse(out, &back);
	if (r != 0)
		fprintf(stderr, "fuzz_state: ms_parse refuses what ms_format wrote (%d):\n%s\n", r, out);
	CHECK(r == 0);
	CHECK(state_equal(&st, &back));
	again = ms_format(&back);
	CHECK(again && strcmp(out, again) == 0);
	free(again);
	free(out);
	ms_free(&back);
	ms_free(&st);
}

static void check_codec(const char *s)
{
	char *e = ms_encode(s), *d, *e2, *d2;

	if (!e)
		return;
	for (const unsigned char *p = (const unsigned char *)e; *p; p++)
		CHECK(*p > 0x20 && *p < 0x7f);
	CHECK(*e != '\0');
	d = ms_decode(e);
	CHECK(d && strcmp(d, s) == 0);
	free(d);
	free(e);

	d = ms_decode(s);
	if (!d)
		return;
	e2 = ms_encode(d);
	CHECK(e2);
	d2 = ms_decode(e2);
	CHECK(d2 && strcmp(d2, d) == 0);
	free(d2);
	free(e2);
	free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 32), *sum;
	size_t body;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	check_record(text);
	check_codec(text);

	/* the same body under a correct sum */
	body = strlen(text);
	for (sum = strstr(text, "sum "); sum; sum = strstr(sum + 1, "sum ")) {
		if (sum == text || sum[-1] == '\n') {
			body = (size_t)(sum - text);
			break;
		}
	}
	if (body > 0 && text[body - 1] != '\n')
		text[body++] = '\n';
	snprintf(text + body, 31, "sum %016llx\n", (unsigned long long)XXH3_64bits(text, body));
	check_record(text);
	free(text);
	return 0;
}
