/* aic_weights.c: where a model's weights are.
 *
 * Embedded weights are the aic_weights blob inside the .so. Large weights live in a side
 * file, <model .so name without .so>.weights in the .so's folder, which is mapped read-only
 * when the .so is loaded (a constructor, so a program that links the .so, dlopen's it, or
 * loads it through a name that is removed right after, all find it) and checked: its size,
 * its trailer's magic, and its sha256 against the one recorded in the .so. A failure is
 * reported by aic_create.
 *
 * Weights of AIC_HUGE_BYTES or more (a checked file, or the blob in the .so) are copied into anonymous
 * memory on 2 MiB pages (transparent huge pages, asked for with madvise) when the first model instance is
 * created (the file unmapped, the blob's pages dropped from the process), so loads that only read the .so's
 * metadata (aic inspect, a compile-cache hit) pay nothing: a kernel streaming weights through a 4 KiB file
 * mapping walks the page tables every 4 KiB, and those walks cost most after the process has been idle (the
 * MLP's run after a 150 ms pause took 1.4x its back-to-back time; BENCHMARKS.md, "Weights on huge pages").
 * AIC_WEIGHTS_MAP=1 keeps the file mapping or the blob instead (processes loading one model then share its
 * page cache).
 */
#define _GNU_SOURCE
#include "aic_internal.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define TRAILER_BYTES 64
#define MAGIC "AICWGT01"
#define HUGE_PAGE ((size_t)2 << 20)

static const void *base;
static void *mapping;
static size_t mapped_bytes;
static int on_huge_pages; /* mapping is an aic_huge_alloc copy, not the file */
static char error[1024]; /* paths are cut at 400 characters in messages */

void *aic_huge_alloc(size_t bytes) {
    size_t whole = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    char *raw = mmap(NULL, whole + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return NULL;
    char *start = (char *)(((uintptr_t)raw + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (start > raw) munmap(raw, (size_t)(start - raw));
    munmap(start + whole, (size_t)(raw + HUGE_PAGE - start));
    madvise(start, whole, MADV_HUGEPAGE); /* advice only: without THP the memory stays on 4 KiB pages */
    return start;
}

void aic_huge_free(void *p, size_t bytes) {
    if (p != NULL) munmap(p, (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE);
}

/* Copy the weights (the mapped file or the blob in the .so) into huge-page memory, read-only; on failure keep
 * them where they are. The blob's own pages are dropped from the process (they stay in the page cache). */
static void copy_to_huge_pages(void) {
    size_t bytes = mapping != NULL ? mapped_bytes : (size_t)aic_weights_data.nbytes;
    char *copy = aic_huge_alloc(bytes);
    if (copy == NULL) return;
    memcpy(copy, base, bytes);
    mprotect(copy, bytes, PROT_READ);
    if (mapping != NULL) {
        munmap(mapping, mapped_bytes);
    } else {
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        uintptr_t first = ((uintptr_t)aic_weights + page - 1) & ~(uintptr_t)(page - 1);
        uintptr_t end = ((uintptr_t)aic_weights + bytes) & ~(uintptr_t)(page - 1);
        if (end > first) madvise((void *)first, end - first, MADV_DONTNEED);
    }
    mapping = copy;
    mapped_bytes = bytes;
    base = copy;
    on_huge_pages = 1;
}

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

static pthread_once_t huge_pages_once = PTHREAD_ONCE_INIT;

static void move_to_huge_pages(void) {
    const char *keep = getenv("AIC_WEIGHTS_MAP");
    if (base != NULL && (size_t)aic_weights_data.nbytes >= AIC_HUGE_BYTES && !(keep != NULL && strcmp(keep, "1") == 0))
        copy_to_huge_pages();
}

__attribute__((constructor)) static void weights_open(void) {
    if (aic_weights_data.external)
        open_side_file();
    else
        base = aic_weights;
}

__attribute__((destructor)) static void weights_close(void) {
    if (on_huge_pages)
        aic_huge_free(mapping, mapped_bytes);
    else if (mapping != NULL)
        munmap(mapping, mapped_bytes);
    mapping = NULL;
    base = NULL;
}

const void *aic_weights_base(const char **why) {
    pthread_once(&huge_pages_once, move_to_huge_pages);
    if (base == NULL && why != NULL) *why = error;
    return base;
}
