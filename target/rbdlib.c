/*
 * rbdlib: librbd and librados, loaded at the first use of an RBD
 * destination (see rbdlib.h).
 *
 * A load that failed is tried again at the next use, so that installing
 * the packages is enough, without restarting relocfs; one that succeeded
 * holds for the life of the process (the libraries are never closed: their
 * threads and caches outlive any one image).
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "target/rbdlib.h"

/* the sonames (a test gives names that no system has) */
#ifndef RBDLIB_LIBRADOS
#define RBDLIB_LIBRADOS "librados.so.2"
#endif
#ifndef RBDLIB_LIBRBD
#define RBDLIB_LIBRBD "librbd.so.1"
#endif

#define RBDLIB_DEFINE(name) __typeof__(name) *rbdlib_##name;
RBDLIB_RADOS(RBDLIB_DEFINE)
RBDLIB_RBD(RBDLIB_DEFINE)
#undef RBDLIB_DEFINE

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static bool loaded;			/* load_lock; then never changes */
static void *rados_handle, *rbd_handle;	/* load_lock */

/* dlopen a library, once; -ELIBACC with the reason in err */
static int open_lib(void **handle, const char *soname, const char *package, char *err,
		    size_t errlen)
{
	const char *why;
	size_t n = strlen(soname);

	if (*handle)
		return 0;
	*handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (*handle)
		return 0;
	/* dlerror() says "SONAME: cannot open shared object file: ..." */
	why = dlerror();
	if (!why)
		why = "unknown error";
	else if (!strncmp(why, soname, n) && !strncmp(why + n, ": ", 2))
		why += n + 2;
	snprintf(err, errlen, "cannot load %s: %s; install Debian's %s", soname, why, package);
	return -ELIBACC;
}

/* dlsym a function; -ELIBACC naming it in err if the library lacks it */
static void *sym(void *handle, const char *soname, const char *name, int *r, char *err,
		 size_t errlen)
{
	void *p;

	if (*r)
		return NULL;
	p = dlsym(handle, name);
	if (!p) {
		snprintf(err, errlen, "cannot load %s: it has no %s (relocfs needs the library "
			 "of Ceph 14 (Nautilus) or later)", soname, name);
		*r = -ELIBACC;
	}
	return p;
}

static int load(char *err, size_t errlen)
{
	int r;

	r = open_lib(&rados_handle, RBDLIB_LIBRADOS, "librados2", err, errlen);
	if (!r)
		r = open_lib(&rbd_handle, RBDLIB_LIBRBD, "librbd1", err, errlen);
	if (r)
		return r;
#define RBDLIB_RESOLVE_RADOS(name) \
	rbdlib_##name = sym(rados_handle, RBDLIB_LIBRADOS, #name, &r, err, errlen);
#define RBDLIB_RESOLVE_RBD(name) \
	rbdlib_##name = sym(rbd_handle, RBDLIB_LIBRBD, #name, &r, err, errlen);
	RBDLIB_RADOS(RBDLIB_RESOLVE_RADOS)
	RBDLIB_RBD(RBDLIB_RESOLVE_RBD)
#undef RBDLIB_RESOLVE_RADOS
#undef RBDLIB_RESOLVE_RBD
	return r;
}

int rbdlib_load(char *err, size_t errlen)
{
	int r = 0;

	pthread_mutex_lock(&load_lock);
	if (!loaded) {
		r = load(err, errlen);
		loaded = r == 0;
	}
	pthread_mutex_unlock(&load_lock);
	return r;
}
