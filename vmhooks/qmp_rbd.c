/*
 * qmp_rbd: the hand-over of a paused QEMU's disks to its own rbd driver, in
 * four named steps on one QMP connection:
 *
 *   1. look: query-named-block-nodes and x-debug-query-block-graph; for
 *      each file, its protocol node (driver "file", filename the file's path
 *      through the mount), the format node whose "file" child it is, that
 *      node's backing node, and the options a reopen must repeat (cache,
 *      read-only, detect-zeroes: a reopen resets what it is not given);
 *   2. add an rbd node per image, "relocfs-rbd-N" (the first N free), with
 *      the cache mode of the protocol node it replaces (cache.direct is
 *      QEMU's rbd_cache=false);
 *   3. reopen every format node with "file" naming its rbd node, all in one
 *      blockdev-reopen, which QEMU applies as one transaction;
 *   4. delete the old protocol nodes that the monitor still owns (made with
 *      -blockdev or blockdev-add; the ones -drive made go away with their
 *      last parent), so that QEMU closes the files on the mount.
 * A failure in 1-3 deletes the rbd nodes added so far: every disk stays on
 * the mount.  A failure in 4 is logged only: the disks read and write
 * through their rbd nodes already.
 *
 * Why the graph command: the named nodes do not say which node is whose
 * child, and a reopen that named the wrong backing node would change the
 * guest's disk under it.  x-debug-query-block-graph is marked unstable but
 * has not changed since QEMU 4.0; a QEMU without it fails step 1.
 *
 * Deliberately refused (the hand-over fails, the VM stays on the mount): a
 * file opened by more than one node or used by anything but one format
 * node, formats other than raw and qcow2, a format node with children other
 * than "file" and "backing" (a qcow2 data file), a file QEMU names by
 * another path (relative, or through a symlink).  Refused by QEMU itself: a
 * format node whose name QEMU made up ("#block123", from -drive without
 * node-name=) cannot be reopened with new options.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "vmhooks/hook_impl.h"
#include "vmhooks/qmp_rbd.h"

/* ---- reading QEMU's replies ----------------------------------------------- */

/* a and b name the same path, up to repeated '/', "/./" and a trailing '/' */
static void path_clean(const char *in, char *out, size_t len)
{
	size_t n = 0;

	for (const char *p = in; *p && n + 1 < len; p++) {
		if (*p == '/' && n && out[n - 1] == '/')
			continue;
		if (*p == '.' && n && out[n - 1] == '/' && (p[1] == '/' || !p[1]))
			continue;
		out[n++] = *p;
	}
	while (n > 1 && out[n - 1] == '/')
		n--;
	out[n] = '\0';
}

static bool same_path(const char *a, const char *b)
{
	char ca[4096], cb[4096];

	if (!a || !b)
		return false;
	path_clean(a, ca, sizeof(ca));
	path_clean(b, cb, sizeof(cb));
	return !strcmp(ca, cb);
}

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static json_t *node_named(json_t *nodes, const char *name)
{
	size_t i;
	json_t *nd;

	json_array_foreach(nodes, i, nd) {
		const char *nn = jstr(nd, "node-name");

		if (nn && !strcmp(nn, name))
			return nd;
	}
	return NULL;
}

/* the graph's id of the block-driver node called name, -1 if none */
static json_int_t graph_id(json_t *graph, const char *name)
{
	size_t i;
	json_t *g;

	json_array_foreach(json_object_get(graph, "nodes"), i, g) {
		const char *type = jstr(g, "type"), *gn = jstr(g, "name");

		if (type && gn && !strcmp(type, "block-driver") && !strcmp(gn, name))
			return json_integer_value(json_object_get(g, "id"));
	}
	return -1;
}

static json_t *graph_node(json_t *graph, json_int_t id)
{
	size_t i;
	json_t *g;

	json_array_foreach(json_object_get(graph, "nodes"), i, g)
		if (json_integer_value(json_object_get(g, "id")) == id)
			return g;
	return NULL;
}

static bool jbool(json_t *o, const char *obj, const char *key)
{
	return json_is_true(json_object_get(json_object_get(o, obj), key));
}

/* ---- 1: the plan -------------------------------------------------------------- */

/* The protocol node of d's file: exactly one node of driver "file". */
static int plan_file_node(json_t *nodes, struct qmp_rbd_disk *d, json_t **out, char *err,
			  size_t errlen)
{
	int found = 0;
	size_t i;
	json_t *nd;

	json_array_foreach(nodes, i, nd) {
		const char *drv = jstr(nd, "drv");

		if (drv && !strcmp(drv, "file") && same_path(jstr(nd, "file"), d->img->path)) {
			*out = nd;
			found++;
		}
	}
	if (found == 0) {
		hook_errf(err, errlen, "QEMU has no node for '%s' (it must name the file by that "
			  "path)", d->img->path);
		return -ENOENT;
	}
	if (found > 1) {
		hook_errf(err, errlen, "QEMU opened '%s' %d times: the hand-over takes a file "
			  "opened once", d->img->path, found);
		return -EOPNOTSUPP;
	}
	if (!jstr(*out, "node-name")) {
		hook_errf(err, errlen, "query-named-block-nodes: a node without a name");
		return -EPROTO;
	}
	snprintf(d->file_node, sizeof(d->file_node), "%s", jstr(*out, "node-name"));
	return 0;
}

/* The one parent of the protocol node: a format node, through "file". */
static int plan_format_node(json_t *nodes, json_t *graph, struct qmp_rbd_disk *d,
			    json_t **out, char *err, size_t errlen)
{
	json_int_t fid = graph_id(graph, d->file_node), pid = -1;
	const char *role = NULL, *pname, *drv;
	int parents = 0;
	size_t i;
	json_t *e, *pn;

	if (fid < 0) {
		hook_errf(err, errlen, "x-debug-query-block-graph: no node '%s'", d->file_node);
		return -EPROTO;
	}
	json_array_foreach(json_object_get(graph, "edges"), i, e) {
		if (json_integer_value(json_object_get(e, "child")) != fid)
			continue;
		pid = json_integer_value(json_object_get(e, "parent"));
		role = jstr(e, "name");
		parents++;
	}
	pn = parents == 1 ? graph_node(graph, pid) : NULL;
	if (parents != 1 || !role || strcmp(role, "file") || !pn ||
	    strcmp(jstr(pn, "type") ? jstr(pn, "type") : "", "block-driver")) {
		hook_errf(err, errlen, "'%s' is not the file of one format node in QEMU (%d user(s)"
			  "%s%s): the hand-over replaces a format node's file", d->img->path, parents,
			  parents == 1 ? ", " : "", parents == 1 && pn ? jstr(pn, "type") : "");
		return -EOPNOTSUPP;
	}
	pname = jstr(pn, "name");
	*out = pname ? node_named(nodes, pname) : NULL;
	if (!*out) {
		hook_errf(err, errlen, "query-named-block-nodes: no node '%s'", pname ? pname : "?");
		return -EPROTO;
	}
	drv = jstr(*out, "drv");
	if (!drv || (strcmp(drv, "raw") && strcmp(drv, "qcow2"))) {
		hook_errf(err, errlen, "QEMU reads '%s' with its '%s' driver: the hand-over takes "
			  "raw and qcow2", d->img->path, drv ? drv : "?");
		return -EOPNOTSUPP;
	}
	snprintf(d->format_node, sizeof(d->format_node), "%s", pname);
	snprintf(d->format_drv, sizeof(d->format_drv), "%s", drv);
	/* its children: the file, a backing node; nothing else */
	json_array_foreach(json_object_get(graph, "edges"), i, e) {
		const char *name = jstr(e, "name");
		json_t *c;

		if (json_integer_value(json_object_get(e, "parent")) != pid)
			continue;
		if (name && !strcmp(name, "file"))
			continue;
		c = graph_node(graph, json_integer_value(json_object_get(e, "child")));
		if (!name || strcmp(name, "backing") || !c || !jstr(c, "name")) {
			hook_errf(err, errlen, "the format node of '%s' has a child '%s': the "
				  "hand-over takes a file and a backing node only", d->img->path,
				  name ? name : "?");
			return -EOPNOTSUPP;
		}
		snprintf(d->backing, sizeof(d->backing), "%s", jstr(c, "name"));
		d->has_backing = true;
	}
	/* a reopen without "backing" would open the one the image names */
	d->backing_null = !d->has_backing && !strcmp(drv, "qcow2");
	return 0;
}

/* the first "relocfs-rbd-N" neither QEMU nor an earlier disk uses */
static void plan_new_node(json_t *nodes, struct qmp_rbd_disk *disks, int i)
{
	for (int k = 0;; k++) {
		bool taken = false;

		snprintf(disks[i].new_node, sizeof(disks[i].new_node), QMP_RBD_NODE_PREFIX "%d", k);
		for (int m = 0; m < i && !taken; m++)
			taken = !strcmp(disks[m].new_node, disks[i].new_node);
		if (!taken && !node_named(nodes, disks[i].new_node))
			return;
	}
}

int qmp_rbd_plan(json_t *nodes, json_t *graph, const struct vmhook_image *imgs, int n,
		 struct qmp_rbd_disk *disks, char *err, size_t errlen)
{
	if (!json_is_array(nodes) || !json_is_array(json_object_get(graph, "nodes")) ||
	    !json_is_array(json_object_get(graph, "edges"))) {
		hook_errf(err, errlen, "QEMU's block nodes or graph came in another shape");
		return -EPROTO;
	}
	for (int i = 0; i < n; i++) {
		struct qmp_rbd_disk *d = &disks[i];
		json_t *file = NULL, *fmt = NULL;
		int r;

		memset(d, 0, sizeof(*d));
		d->img = &imgs[i];
		r = plan_file_node(nodes, d, &file, err, errlen);
		if (!r)
			r = plan_format_node(nodes, graph, d, &fmt, err, errlen);
		if (r)
			return r;
		d->direct = jbool(fmt, "cache", "direct");
		d->no_flush = jbool(fmt, "cache", "no-flush");
		d->read_only = json_is_true(json_object_get(fmt, "ro"));
		snprintf(d->detect_zeroes, sizeof(d->detect_zeroes), "%s",
			 jstr(fmt, "detect_zeroes") ? jstr(fmt, "detect_zeroes") : "off");
		d->file_direct = jbool(file, "cache", "direct");
		d->file_no_flush = jbool(file, "cache", "no-flush");
		d->file_read_only = json_is_true(json_object_get(file, "ro"));
		snprintf(d->file_detect_zeroes, sizeof(d->file_detect_zeroes), "%s",
			 jstr(file, "detect_zeroes") ? jstr(file, "detect_zeroes") : "off");
		plan_new_node(nodes, disks, i);
	}
	return 0;
}

/* ---- 2 and 3: the commands' arguments ------------------------------------------ */

static json_t *cache_of(bool direct, bool no_flush)
{
	return json_pack("{s:b, s:b}", "direct", direct, "no-flush", no_flush);
}

json_t *qmp_rbd_add_args(const struct qmp_rbd_disk *d)
{
	/* discard "unmap": whether discards reach it is the format node's call */
	json_t *a = json_pack("{s:s, s:s, s:s, s:s, s:o, s:b, s:s, s:s}", "driver", "rbd",
			      "node-name", d->new_node, "pool", d->img->pool, "image",
			      d->img->image, "cache", cache_of(d->file_direct, d->file_no_flush),
			      "read-only", d->file_read_only, "discard", "unmap", "detect-zeroes",
			      d->file_detect_zeroes);

	if (a && d->img->conf && d->img->conf[0])
		json_object_set_new(a, "conf", json_string(d->img->conf));
	if (a && d->img->user && d->img->user[0])
		json_object_set_new(a, "user", json_string(d->img->user));
	return a;
}

json_t *qmp_rbd_reopen_args(const struct qmp_rbd_disk *disks, int n)
{
	json_t *opts = json_array();

	for (int i = 0; opts && i < n; i++) {
		const struct qmp_rbd_disk *d = &disks[i];
		json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:b, s:s}", "driver", d->format_drv,
				      "node-name", d->format_node, "file", d->new_node, "cache",
				      cache_of(d->direct, d->no_flush), "read-only", d->read_only,
				      "detect-zeroes", d->detect_zeroes);

		if (o && d->has_backing)
			json_object_set_new(o, "backing", json_string(d->backing));
		else if (o && d->backing_null)
			json_object_set_new(o, "backing", json_null());
		if (!o || json_array_append_new(opts, o)) {
			json_decref(opts);
			return NULL;
		}
	}
	return opts ? json_pack("{s:o}", "options", opts) : NULL;
}

/* ---- the steps ------------------------------------------------------------------- */

struct handover {
	struct qmp *q;
	const char *name;		/* the socket, for messages */
	int64_t deadline;
	struct qmp_rbd_disk *disks;
	int n, added;			/* disks[0..added) have their rbd node in QEMU */
	char *err;
	size_t errlen;
};

static int exec(struct handover *h, const char *cmd, json_t *args, json_t **ret)
{
	int r = qmp_execute(h->q, cmd, args, ret, hook_left_ms(h->deadline), h->err, h->errlen);

	json_decref(args);
	return r;
}

/* 1 */
static int step_look(struct handover *h, const struct vmhook_image *imgs)
{
	json_t *nodes = NULL, *graph = NULL;
	char why[384];
	int r;

	r = exec(h, "query-named-block-nodes", json_pack("{s:b}", "flat", 1), &nodes);
	if (!r)
		r = exec(h, "x-debug-query-block-graph", NULL, &graph);
	if (!r) {
		r = qmp_rbd_plan(nodes, graph, imgs, h->n, h->disks, why, sizeof(why));
		if (r)
			hook_errf(h->err, h->errlen, "qmp-rbd '%s': %s", h->name, why);
	}
	json_decref(nodes);
	json_decref(graph);
	return r;
}

/* 2 */
static int step_add(struct handover *h)
{
	for (; h->added < h->n; h->added++) {
		struct qmp_rbd_disk *d = &h->disks[h->added];
		json_t *args = qmp_rbd_add_args(d);
		int r;

		if (!args) {
			hook_errf(h->err, h->errlen, "qmp-rbd '%s': out of memory", h->name);
			return -ENOMEM;
		}
		r = exec(h, "blockdev-add", args, NULL);
		if (r)
			return r;
		log_debug("qmp-rbd '%s': node '%s' for '%s/%s'", h->name, d->new_node,
			  d->img->pool, d->img->image);
	}
	return 0;
}

/* 3 */
static int step_reopen(struct handover *h)
{
	json_t *args = qmp_rbd_reopen_args(h->disks, h->n);
	int r;

	if (!args) {
		hook_errf(h->err, h->errlen, "qmp-rbd '%s': out of memory", h->name);
		return -ENOMEM;
	}
	r = exec(h, "blockdev-reopen", args, NULL);
	for (int i = 0; r == -EIO && i < h->n; i++) {
		size_t l = strlen(h->err);

		if (h->disks[i].format_node[0] != '#')
			continue;
		/* QEMU reopens only nodes whose name was given to it */
		snprintf(h->err + l, h->errlen - l, " (the format node of '%s' has no name of its "
			 "own: give it one, -blockdev or -drive ...,node-name=NAME)",
			 h->disks[i].img->path);
		break;
	}
	return r;
}

/* 4: best effort; the data path no longer goes through these nodes */
static void step_drop_old(struct handover *h)
{
	json_t *nodes = NULL;
	char err[384];

	if (qmp_execute(h->q, "query-named-block-nodes", json_pack("{s:b}", "flat", 1), &nodes,
			hook_left_ms(h->deadline) > 2000 ? hook_left_ms(h->deadline) : 2000, err,
			sizeof(err))) {
		log_warnx("qmp-rbd '%s': cannot tell whether QEMU still holds the files on the "
			  "mount: %s", h->name, err);
		return;
	}
	for (int i = 0; i < h->n; i++) {
		const char *old = h->disks[i].file_node;

		if (!node_named(nodes, old))
			continue;	/* gone with its last parent */
		if (qmp_execute(h->q, "blockdev-del", json_pack("{s:s}", "node-name", old), NULL,
				hook_left_ms(h->deadline) > 2000 ? hook_left_ms(h->deadline) : 2000,
				err, sizeof(err)))
			log_warnx("qmp-rbd '%s': QEMU keeps '%s' open on the mount (node '%s', no "
				  "longer used): %s", h->name, h->disks[i].img->path, old, err);
	}
	json_decref(nodes);
}

/* undo 2: delete the rbd nodes added (they have no parent yet) */
static void undo_add(struct handover *h)
{
	for (int i = h->added - 1; i >= 0; i--) {
		char err[384];

		if (qmp_execute(h->q, "blockdev-del",
				json_pack("{s:s}", "node-name", h->disks[i].new_node), NULL, 2000, err,
				sizeof(err)))
			log_warnx("qmp-rbd '%s': node '%s' is left in QEMU, unused: %s", h->name,
				  h->disks[i].new_node, err);
	}
}

int qmp_rbd_handover(struct qmp *q, const char *name, const struct vmhook_image *imgs, int n,
		     int timeout_ms, char *err, size_t errlen)
{
	struct handover h = {
		.q = q, .name = name, .deadline = hook_now_ms() + timeout_ms, .n = n,
		.err = err, .errlen = errlen,
	};
	int r;

	h.disks = calloc(n ? (size_t)n : 1, sizeof(*h.disks));
	if (!h.disks) {
		hook_errf(err, errlen, "qmp-rbd '%s': out of memory", name);
		return -ENOMEM;
	}
	r = step_look(&h, imgs);
	if (r)
		goto out;
	r = step_add(&h);
	if (r)
		goto out_undo_add;
	r = step_reopen(&h);
	if (r)
		goto out_undo_add;
	step_drop_old(&h);
	for (int i = 0; i < n; i++)
		log_info("qmp-rbd '%s': '%s' now on node '%s' (rbd '%s/%s'), was '%s'", name,
			 imgs[i].path, h.disks[i].new_node, imgs[i].pool, imgs[i].image,
			 h.disks[i].file_node);
	goto out;

out_undo_add:
	/* only a connection QEMU merely said no on can undo anything */
	if (r == -EIO || r == -ENOTSUP)
		undo_add(&h);
out:
	free(h.disks);
	return r;
}
