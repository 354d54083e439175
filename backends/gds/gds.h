/* kvtier — GdsBackend internals shared with its tests. Internal. */
#ifndef KVTIER_GDS_H
#define KVTIER_GDS_H

#include <stdbool.h>

/* Where the loader looks for libcufile.so.0 and libcudart.so.12: NULL (the default) is
 * the dynamic loader's search path. Only tests set it (to stand-in libraries); nothing in
 * the configuration reaches it. Set it before a GdsBackend is created. */
extern const char *kvt__gds_libdir;

/* Why the instance `state` (a GdsBackend's) runs in its mode: "" in gds mode, else the
 * reason for compat mode (e.g. "libcufile.so.0 not found: ..."). Borrowed. */
const char *kvt__gds_reason(void *state);

#endif
