/*
 * rbdlib: librbd and librados, loaded when an RBD destination is first
 * used rather than linked into relocfs.
 *
 * Linked, they and libceph-common are loaded by every relocfs process
 * (some 20 MiB more per mount, and tens of milliseconds at every start,
 * a takeover's new binary included) although most mounts never reach
 * Ceph.  So relocfs is built against their headers only, and
 * rbdlib_load() opens librados.so.2 and librbd.so.1 (dlopen, RTLD_NOW |
 * RTLD_LOCAL) and looks up the functions listed below, once per process;
 * they stay loaded until it exits.
 *
 * Including this header (after nothing that includes librbd.h or
 * librados.h itself) makes every call of a listed function, such as
 * rbd_open(io, name, &image, NULL), a call through the pointer
 * rbdlib_rbd_open, so the call sites read as calls of the library.  Only
 * a call is rewritten (the macros take arguments): relocfs's own
 * functions named rbd_* are not in the list and are left alone.  A call
 * of a function missing from the list fails to link, since relocfs is
 * linked without the libraries.
 *
 * No listed function may be called before rbdlib_load() returned 0 in
 * the process (the pointers are NULL until then).
 */
#ifndef RELOCFS_TARGET_RBDLIB_H
#define RELOCFS_TARGET_RBDLIB_H

#include <stddef.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

/* the functions of librados.so.2 that relocfs calls */
#define RBDLIB_RADOS(X)			\
	X(rados_create)			\
	X(rados_conf_read_file)		\
	X(rados_conf_set)		\
	X(rados_conf_get)		\
	X(rados_connect)		\
	X(rados_shutdown)		\
	X(rados_cluster_stat)		\
	X(rados_ioctx_create)		\
	X(rados_ioctx_destroy)

/* the functions of librbd.so.1 that relocfs calls */
#define RBDLIB_RBD(X)			\
	X(rbd_create4)			\
	X(rbd_remove)			\
	X(rbd_image_options_create)	\
	X(rbd_image_options_destroy)	\
	X(rbd_open)			\
	X(rbd_open_read_only)		\
	X(rbd_close)			\
	X(rbd_get_size)			\
	X(rbd_get_flags)		\
	X(rbd_get_features)		\
	X(rbd_resize)			\
	X(rbd_flush)			\
	X(rbd_diff_iterate2)		\
	X(rbd_metadata_get)		\
	X(rbd_metadata_set)		\
	X(rbd_aio_create_completion)	\
	X(rbd_aio_get_return_value)	\
	X(rbd_aio_release)		\
	X(rbd_aio_read)			\
	X(rbd_aio_write)		\
	X(rbd_aio_write_zeroes)

/* a pointer of the declared type for each: rbdlib_rbd_open, ... */
#define RBDLIB_DECLARE(name) extern __typeof__(name) *rbdlib_##name;
RBDLIB_RADOS(RBDLIB_DECLARE)
RBDLIB_RBD(RBDLIB_DECLARE)
#undef RBDLIB_DECLARE

/*
 * Load both libraries and look up every listed function, the first time
 * it is called in the process; later calls return what the first did
 * (any thread, concurrently).  0, or -ELIBACC with one line in err
 * naming the library, why, and the Debian package that has it.
 */
int rbdlib_load(char *err, size_t errlen);

/* the calls, through the pointers */
#define rados_create(...)		rbdlib_rados_create(__VA_ARGS__)
#define rados_conf_read_file(...)	rbdlib_rados_conf_read_file(__VA_ARGS__)
#define rados_conf_set(...)		rbdlib_rados_conf_set(__VA_ARGS__)
#define rados_conf_get(...)		rbdlib_rados_conf_get(__VA_ARGS__)
#define rados_connect(...)		rbdlib_rados_connect(__VA_ARGS__)
#define rados_shutdown(...)		rbdlib_rados_shutdown(__VA_ARGS__)
#define rados_cluster_stat(...)		rbdlib_rados_cluster_stat(__VA_ARGS__)
#define rados_ioctx_create(...)		rbdlib_rados_ioctx_create(__VA_ARGS__)
#define rados_ioctx_destroy(...)	rbdlib_rados_ioctx_destroy(__VA_ARGS__)
#define rbd_create4(...)		rbdlib_rbd_create4(__VA_ARGS__)
#define rbd_remove(...)			rbdlib_rbd_remove(__VA_ARGS__)
#define rbd_image_options_create(...)	rbdlib_rbd_image_options_create(__VA_ARGS__)
#define rbd_image_options_destroy(...)	rbdlib_rbd_image_options_destroy(__VA_ARGS__)
#define rbd_open(...)			rbdlib_rbd_open(__VA_ARGS__)
#define rbd_open_read_only(...)		rbdlib_rbd_open_read_only(__VA_ARGS__)
#define rbd_close(...)			rbdlib_rbd_close(__VA_ARGS__)
#define rbd_get_size(...)		rbdlib_rbd_get_size(__VA_ARGS__)
#define rbd_get_flags(...)		rbdlib_rbd_get_flags(__VA_ARGS__)
#define rbd_get_features(...)		rbdlib_rbd_get_features(__VA_ARGS__)
#define rbd_resize(...)			rbdlib_rbd_resize(__VA_ARGS__)
#define rbd_flush(...)			rbdlib_rbd_flush(__VA_ARGS__)
#define rbd_diff_iterate2(...)		rbdlib_rbd_diff_iterate2(__VA_ARGS__)
#define rbd_metadata_get(...)		rbdlib_rbd_metadata_get(__VA_ARGS__)
#define rbd_metadata_set(...)		rbdlib_rbd_metadata_set(__VA_ARGS__)
#define rbd_aio_create_completion(...)	rbdlib_rbd_aio_create_completion(__VA_ARGS__)
#define rbd_aio_get_return_value(...)	rbdlib_rbd_aio_get_return_value(__VA_ARGS__)
#define rbd_aio_release(...)		rbdlib_rbd_aio_release(__VA_ARGS__)
#define rbd_aio_read(...)		rbdlib_rbd_aio_read(__VA_ARGS__)
#define rbd_aio_write(...)		rbdlib_rbd_aio_write(__VA_ARGS__)
#define rbd_aio_write_zeroes(...)	rbdlib_rbd_aio_write_zeroes(__VA_ARGS__)

#endif
