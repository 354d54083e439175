/* A stand-in libcufile.so.0 for the GDS loader's failure paths: built once without
 * cuFileRead (STUB_NO_READ) and once whose cuFileDriverOpen fails (STUB_OPEN_FAILS). It
 * exercises loading and error handling only; it never counts as testing GPU I/O.
 * STUB_WORKS builds one whose handles and reads/writes are pread/pwrite on the file
 * descriptor, into the "device" memory of cudart_stub.c's STUB_WORKS (host memory): it
 * drives GdsBackend's gds-mode code path (bounce buffers, chunking, end of file) without a
 * GPU, and never counts as testing GPU I/O either. */
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

typedef struct {
    int err, cu_err;
} err_t;

#define API __attribute__((visibility("default")))

/* Prototypes, as <cufile.h> would give them. */
API err_t cuFileDriverOpen(void);
API err_t cuFileDriverClose_v2(void);
API err_t cuFileHandleRegister(void **fh, void *d);
API void cuFileHandleDeregister(void *fh);
API err_t cuFileBufRegister(const void *b, size_t n, int f);
API err_t cuFileBufDeregister(const void *b);
API ssize_t cuFileRead(void *fh, void *b, size_t n, off_t fo, off_t bo);
API ssize_t cuFileWrite(void *fh, const void *b, size_t n, off_t fo, off_t bo);

API err_t cuFileDriverOpen(void)
{
#ifdef STUB_OPEN_FAILS
    return (err_t){5001, 0}; /* CU_FILE_DRIVER_NOT_INITIALIZED */
#else
    return (err_t){0, 0};
#endif
}
API err_t cuFileDriverClose_v2(void) { return (err_t){0, 0}; }
#ifdef STUB_WORKS
struct descr {
    int type;
    union {
        int fd;
        void *handle;
    } handle;
    const void *fs_ops;
};
API err_t cuFileHandleRegister(void **fh, void *d)
{
    *fh = (void *)(intptr_t)(((struct descr *)d)->handle.fd + 1);
    return (err_t){0, 0};
}
#else
API err_t cuFileHandleRegister(void **fh, void *d) { (void)fh, (void)d; return (err_t){5030, 0}; }
#endif
API void cuFileHandleDeregister(void *fh) { (void)fh; }
API err_t cuFileBufRegister(const void *b, size_t n, int f) { (void)b, (void)n, (void)f; return (err_t){0, 0}; }
API err_t cuFileBufDeregister(const void *b) { (void)b; return (err_t){0, 0}; }
#ifdef STUB_WORKS
API ssize_t cuFileRead(void *fh, void *b, size_t n, off_t fo, off_t bo)
{
    return pread((int)(intptr_t)fh - 1, (char *)b + bo, n, fo);
}
API ssize_t cuFileWrite(void *fh, const void *b, size_t n, off_t fo, off_t bo)
{
    return pwrite((int)(intptr_t)fh - 1, (const char *)b + bo, n, fo);
}
#else
#ifndef STUB_NO_READ
API ssize_t cuFileRead(void *fh, void *b, size_t n, off_t fo, off_t bo)
{
    (void)fh, (void)b, (void)n, (void)fo, (void)bo;
    return -1;
}
#endif
API ssize_t cuFileWrite(void *fh, const void *b, size_t n, off_t fo, off_t bo)
{
    (void)fh, (void)b, (void)n, (void)fo, (void)bo;
    return -1;
}
#endif
