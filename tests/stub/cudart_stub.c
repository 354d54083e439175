/* A stand-in libcudart.so.12 for the GDS loader tests (see cufile_stub.c). */
#include <stddef.h>

#define API __attribute__((visibility("default")))

API int cudaMalloc(void **p, size_t n);
API int cudaFree(void *p);
API int cudaMemcpy(void *d, const void *s, size_t n, int k);

API int cudaMalloc(void **p, size_t n) { (void)p, (void)n; return 2; /* out of memory */ }
API int cudaFree(void *p) { (void)p; return 0; }
API int cudaMemcpy(void *d, const void *s, size_t n, int k) { (void)d, (void)s, (void)n, (void)k; return 1; }
