/* A stand-in libcudart.so.12 for the GDS loader tests (see cufile_stub.c). STUB_WORKS:
 * "device" memory is host memory, cudaMemcpy is memcpy. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define API __attribute__((visibility("default")))

API int cudaMalloc(void **p, size_t n);
API int cudaFree(void *p);
API int cudaMemcpy(void *d, const void *s, size_t n, int k);

#ifdef STUB_WORKS
API int cudaMalloc(void **p, size_t n) { return posix_memalign(p, 4096, n) == 0 ? 0 : 2; }
API int cudaFree(void *p) { free(p); return 0; }
API int cudaMemcpy(void *d, const void *s, size_t n, int k) { (void)k; memcpy(d, s, n); return 0; }
#else
API int cudaMalloc(void **p, size_t n) { (void)p, (void)n; return 2; /* out of memory */ }
API int cudaFree(void *p) { (void)p; return 0; }
API int cudaMemcpy(void *d, const void *s, size_t n, int k) { (void)d, (void)s, (void)n, (void)k; return 1; }
#endif
