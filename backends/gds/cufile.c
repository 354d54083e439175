/* kvtier — cuFile through dlopen (see cufile.h). */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "cufile.h"

static void *open_lib(const char *libdir, const char *soname, char *why, size_t cap)
{
    char path[4096];
    if (libdir)
        snprintf(path, sizeof path, "%s/%s", libdir, soname);
    void *h = dlopen(libdir ? path : soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(why, cap, "%s not found: %s", soname, e ? e : "?");
    }
    return h;
}

/* Resolves `name` into `*slot`; false (with `why`) when the library lacks it. */
static bool sym(void *lib, const char *soname, const char *name, void *slot, char *why, size_t cap)
{
    void *p = dlsym(lib, name);
    if (!p) {
        snprintf(why, cap, "%s lacks %s", soname, name);
        return false;
    }
    memcpy(slot, &p, sizeof p); /* object pointer to function pointer, as POSIX allows */
    return true;
}

bool kvt__cufile_load(const char *libdir, struct kvt__cufile *api, char *why, size_t cap)
{
    memset(api, 0, sizeof *api);
    if (!(api->lib = open_lib(libdir, KVT__CUFILE_SONAME, why, cap)))
        return false;
    const char *cf = KVT__CUFILE_SONAME, *rt = KVT__CUDART_SONAME;
    bool ok = sym(api->lib, cf, "cuFileDriverOpen", &api->driver_open, why, cap) &&
              (sym(api->lib, cf, "cuFileDriverClose_v2", &api->driver_close, why, cap) ||
               sym(api->lib, cf, "cuFileDriverClose", &api->driver_close, why, cap)) &&
              sym(api->lib, cf, "cuFileHandleRegister", &api->handle_register, why, cap) &&
              sym(api->lib, cf, "cuFileHandleDeregister", &api->handle_deregister, why, cap) &&
              sym(api->lib, cf, "cuFileBufRegister", &api->buf_register, why, cap) &&
              sym(api->lib, cf, "cuFileBufDeregister", &api->buf_deregister, why, cap) &&
              sym(api->lib, cf, "cuFileRead", &api->read, why, cap) &&
              sym(api->lib, cf, "cuFileWrite", &api->write, why, cap) &&
              (api->cudart = open_lib(libdir, rt, why, cap)) != NULL &&
              sym(api->cudart, rt, "cudaMalloc", &api->cuda_malloc, why, cap) &&
              sym(api->cudart, rt, "cudaFree", &api->cuda_free, why, cap) &&
              sym(api->cudart, rt, "cudaMemcpy", &api->cuda_memcpy, why, cap);
    if (ok) {
        kvt__cufile_error e = api->driver_open();
        api->opened = e.err == 0;
        if (!api->opened) {
            snprintf(why, cap, "cuFileDriverOpen failed: err=%d cu_err=%d", e.err, e.cu_err);
            ok = false;
        }
    }
    if (!ok)
        kvt__cufile_unload(api);
    return ok;
}

void kvt__cufile_unload(struct kvt__cufile *api)
{
    if (api->opened)
        api->driver_close();
    if (api->cudart)
        dlclose(api->cudart);
    if (api->lib)
        dlclose(api->lib);
    memset(api, 0, sizeof *api);
}
