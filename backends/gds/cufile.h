/* kvtier — cuFile and the CUDA runtime, loaded with dlopen (as KvikIO does): kvtier has no
 * build-time CUDA dependency. Internal to backends/gds.
 *
 * The types mirror the few of <cufile.h> and <cuda_runtime_api.h> used here (stable C ABI
 * of cuFile 1.x). Sonames are fixed, never taken from the configuration. */
#ifndef KVTIER_GDS_CUFILE_H
#define KVTIER_GDS_CUFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct kvt__cufile_error {
    int err;    /* CUfileOpError: 0 = CU_FILE_SUCCESS */
    int cu_err; /* CUresult */
} kvt__cufile_error;

typedef void *kvt__cufile_handle;

typedef struct kvt__cufile_descr {
    int type; /* CU_FILE_HANDLE_TYPE_OPAQUE_FD = 1 */
    union {
        int fd;
        void *handle;
    } handle;
    const void *fs_ops;
} kvt__cufile_descr;

#define KVT__CUFILE_HANDLE_TYPE_OPAQUE_FD 1
#define KVT__CUDA_MEMCPY_H2D 1
#define KVT__CUDA_MEMCPY_D2H 2

/* The resolved entry points; all set, or the table is not usable. */
struct kvt__cufile {
    void *lib, *cudart;
    bool opened; /* the driver is open */
    kvt__cufile_error (*driver_open)(void);
    kvt__cufile_error (*driver_close)(void);
    kvt__cufile_error (*handle_register)(kvt__cufile_handle *fh, kvt__cufile_descr *d);
    void (*handle_deregister)(kvt__cufile_handle fh);
    kvt__cufile_error (*buf_register)(const void *base, size_t len, int flags);
    kvt__cufile_error (*buf_deregister)(const void *base);
    ssize_t (*read)(kvt__cufile_handle fh, void *base, size_t n, off_t foff, off_t boff);
    ssize_t (*write)(kvt__cufile_handle fh, const void *base, size_t n, off_t foff, off_t boff);
    int (*cuda_malloc)(void **p, size_t n);
    int (*cuda_free)(void *p);
    int (*cuda_memcpy)(void *dst, const void *src, size_t n, int kind);
};

#define KVT__CUFILE_SONAME "libcufile.so.0"
#define KVT__CUDART_SONAME "libcudart.so.12"

/* Loads both libraries and opens the cuFile driver. true with `api` filled; false with
 * `why` saying what was missing or failed (e.g. "libcufile.so.0 not found: ..."), in
 * which case nothing stays loaded. `libdir` NULL: the dynamic loader's search path (the
 * tests point it elsewhere to exercise the failure paths). */
bool kvt__cufile_load(const char *libdir, struct kvt__cufile *api, char *why, size_t cap);
/* Closes the driver and unloads. */
void kvt__cufile_unload(struct kvt__cufile *api);

#endif
