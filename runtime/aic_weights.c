/* aic_weights.c: where a model's weights are.
 *
 * Embedded weights are the aic_weights blob inside the .so. Large weights live in a side
 * file, <model .so name without .so>.weights in the .so's folder, which is mapped read-only
 * when the .so is loaded (a constructor, so a program that links the .so, dlopen's it, or
 * loads it through a name that is removed right after, all find it) and checked: its size,
 * its trailer's magic, and its sha256 against the one recorded in the .so. A failure is
 * reported by aic_create.
 */
#define _GNU_SOURCE
#include "aic_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define TRAILER_BYTES 64
#define MAGIC "AICWGT01"

static const void *base;
static void *mapping;
static size_t mapped_bytes;
static char error[1024]; /* paths are cut at 400 characters in messages */

static void open_side_file(void) {
    Dl_info info;
    if (!dladdr((const void *)&aic_weights_data, &info) || info.dli_fname == NULL) {
        snprintf(error, sizeof error, "aic: cannot tell where this model .so is, so its weights file cannot be found");
        return;
    }
    char path[4096];
    size_t len = strlen(info.dli_fname);
    if (len >= 3 && strcmp(info.dli_fname + len - 3, ".so") == 0) len -= 3;
    if (snprintf(path, sizeof path, "%.*s.weights", (int)len, info.dli_fname) >= (int)sizeof path) {
        snprintf(error, sizeof error, "aic: the path of %s is too long", info.dli_fname);
        return;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(error, sizeof error,
                 "aic: cannot open the weights file %.400s: %s (this model keeps its weights in a side file next to "
                 "the .so; copy both, or rebuild with --embed-weights for one file)",
                 path, strerror(errno));
        return;
    }
    struct stat st;
    size_t expected = (size_t)aic_weights_data.nbytes + TRAILER_BYTES;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size != expected) {
        snprintf(error, sizeof error,
                 "aic: the weights file %.400s holds %lld bytes; this model expects %zu: it belongs to another build "
                 "(copy the .weights file built with this .so)",
                 path, (long long)st.st_size, expected);
        close(fd);
        return;
    }
    void *p = mmap(NULL, expected, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        snprintf(error, sizeof error, "aic: cannot map the weights file %.400s: %s", path, strerror(errno));
        return;
    }
    const unsigned char *trailer = (const unsigned char *)p + aic_weights_data.nbytes;
    if (memcmp(trailer, MAGIC, 8) != 0 || memcmp(trailer + 16, aic_weights_data.sha256, 32) != 0) {
        snprintf(error, sizeof error,
                 "aic: the weights file %.400s does not match this model (its sha256 differs): it belongs to another "
                 "build (copy the .weights file built with this .so)",
                 path);
        munmap(p, expected);
        return;
    }
    mapping = p;
    mapped_bytes = expected;
    base = p;
}

__attribute__((constructor)) static void weights_open(void) {
    if (aic_weights_data.external)
        open_side_file();
    else
        base = aic_weights;
}

__attribute__((destructor)) static void weights_close(void) {
    if (mapping != NULL) munmap(mapping, mapped_bytes);
    mapping = NULL;
    base = NULL;
}

const void *aic_weights_base(const char **why) {
    if (base == NULL && why != NULL) *why = error;
    return base;
}
