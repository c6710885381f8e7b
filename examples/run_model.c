/* run_model: run a model compiled by aic, from C, without Python.
 *
 *     cc -O2 -I../runtime run_model.c -o run_model -ldl      (or: make)
 *     ./run_model model.so [-t THREADS] [-n REPEAT] [-d DIMS] [INPUT.raw ...]
 *
 * Each INPUT.raw holds the raw bytes of one input, in the model's input order
 * (e.g. numpy's `x.astype(np.float32).tofile("x.raw")`); inputs without a file are
 * zeros. Prints the model's signature, the run time and statistics of each output.
 * A model compiled for ranges of sizes (aic compile --shape batch=1..8) runs at the sizes
 * given by -d: every input's dims in order, comma-separated (-d 2,3,64,64), through
 * aic_run_dims, which checks them; without -d it runs at its largest sizes.
 * The model is opened with dlopen, so one binary runs any model. A program for given
 * models can instead link them directly and call aic.h; two_models.c shows how, with
 * models compiled with --symbol-prefix so that their functions do not clash.
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aic.h"

typedef struct {
    int (*num_inputs)(void);
    int (*num_outputs)(void);
    const aic_tensor_info *(*input_info)(int);
    const aic_tensor_info *(*output_info)(int);
    aic_model *(*create)(int);
    int (*num_threads)(const aic_model *);
    int (*run)(aic_model *, const void *const *, void *const *);
    int (*run_dims)(aic_model *, const int64_t *, const void *const *, void *const *, int64_t *);
    const char *(*last_error)(void);
    void (*destroy)(aic_model *);
} aic_api;

static void *symbol(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    if (p == NULL) {
        fprintf(stderr, "run_model: the library has no %s: not an aic model\n", name);
        exit(1);
    }
    return p;
}

static double element(const aic_tensor_info *t, const void *data, size_t i) {
    const char *d = t->dtype;
    if (!strcmp(d, "float32")) return ((const float *)data)[i];
    if (!strcmp(d, "float64")) return ((const double *)data)[i];
    if (!strcmp(d, "bfloat16")) {
        unsigned bits = (unsigned)((const unsigned short *)data)[i] << 16;
        float f;
        memcpy(&f, &bits, sizeof f);
        return f;
    }
    if (!strcmp(d, "float16")) {
        unsigned h = ((const unsigned short *)data)[i], exp = (h >> 10) & 31, mant = h & 1023;
        double v = exp == 0 ? ldexp(mant, -24) : exp == 31 ? (mant ? NAN : INFINITY) : ldexp(mant + 1024, (int)exp - 25);
        return (h & 0x8000) ? -v : v;
    }
    if (!strcmp(d, "int8")) return ((const signed char *)data)[i];
    if (!strcmp(d, "int16")) return ((const short *)data)[i];
    if (!strcmp(d, "int32")) return ((const int *)data)[i];
    if (!strcmp(d, "int64")) return (double)((const long long *)data)[i];
    if (!strcmp(d, "uint8") || !strcmp(d, "bool")) return ((const unsigned char *)data)[i];
    if (!strcmp(d, "uint16")) return ((const unsigned short *)data)[i];
    if (!strcmp(d, "uint32")) return ((const unsigned *)data)[i];
    return (double)((const unsigned long long *)data)[i];
}

static size_t count(int rank, const int64_t *shape) {
    size_t n = 1;
    for (int d = 0; d < rank; d++) n *= (size_t)shape[d];
    return n;
}

static void describe(const char *kind, const aic_tensor_info *t, const int64_t *shape) {
    printf("%s %s: %s[", kind, t->name, t->dtype);
    for (int d = 0; d < t->rank; d++) printf(d ? ",%lld" : "%lld", (long long)shape[d]);
    printf("]\n");
}

/* The bytes of tensor `t` at `shape` (its own shape, or the actual one given with -d). */
static size_t bytes_at(const aic_tensor_info *t, const int64_t *shape) {
    size_t full = count(t->rank, t->shape);
    return full ? t->nbytes / full * count(t->rank, shape) : 0;
}

static void *read_input(const aic_tensor_info *t, const int64_t *shape, const char *path) {
    size_t nbytes = bytes_at(t, shape);
    void *data = calloc(1, nbytes ? nbytes : 1);
    if (data == NULL || path == NULL) return data;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "run_model: cannot open %s\n", path);
        exit(1);
    }
    size_t got = fread(data, 1, nbytes, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != nbytes || extra) {
        fprintf(stderr, "run_model: %s must hold exactly %zu bytes for input %s\n", path, nbytes, t->name);
        exit(1);
    }
    return data;
}

int main(int argc, char **argv) {
    int threads = 0, repeat = 1, nfiles = 0, ndims = 0;
    const char *files[64];
    int64_t given[256];
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.so [-t THREADS] [-n REPEAT] [-d DIMS] [INPUT.raw ...]\n", argv[0]);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-d") && i + 1 < argc)
            for (char *p = argv[++i]; *p && ndims < 256; p += *p == ',') given[ndims++] = strtoll(p, &p, 10);
        else if (nfiles < 64) files[nfiles++] = argv[i];
    }
    /* dlopen searches the library path for a bare name: "model.so" means the file here. */
    char path[4096];
    snprintf(path, sizeof path, "%s%s", strchr(argv[1], '/') ? "" : "./", argv[1]);
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "run_model: %s\n", dlerror());
        return 1;
    }
    aic_api api = {
        symbol(lib, "aic_num_inputs"), symbol(lib, "aic_num_outputs"), symbol(lib, "aic_input_info"),
        symbol(lib, "aic_output_info"), symbol(lib, "aic_create"), symbol(lib, "aic_num_threads"),
        symbol(lib, "aic_run"), symbol(lib, "aic_run_dims"), symbol(lib, "aic_last_error"),
        symbol(lib, "aic_destroy"),
    };
    aic_model *model = api.create(threads);
    if (model == NULL) {
        fprintf(stderr, "run_model: %s\n", api.last_error());
        return 1;
    }
    int nin = api.num_inputs(), nout = api.num_outputs(), rank = 0, out_rank = 0;
    for (int i = 0; i < nin; i++) rank += api.input_info(i)->rank;
    for (int i = 0; i < nout; i++) out_rank += api.output_info(i)->rank;
    if (ndims && ndims != rank) {
        fprintf(stderr, "run_model: -d gives %d dims; the inputs have %d in all\n", ndims, rank);
        return 1;
    }
    void **inputs = calloc((size_t)nin + 1, sizeof(void *)), **outputs = calloc((size_t)nout + 1, sizeof(void *));
    int64_t *out_dims = calloc((size_t)out_rank + 1, sizeof(int64_t));
    for (int i = 0, at = 0; i < nin; i++) {
        const aic_tensor_info *t = api.input_info(i);
        const int64_t *shape = ndims ? given + at : t->shape;
        describe("input", t, shape);
        inputs[i] = read_input(t, shape, i < nfiles ? files[i] : NULL);
        at += t->rank;
    }
    for (int i = 0; i < nout; i++) outputs[i] = calloc(1, api.output_info(i)->nbytes + 1); /* enough at any size */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int r = 0; r < repeat; r++) {
        if (api.run_dims(model, ndims ? given : NULL, (const void *const *)inputs, outputs, out_dims) != AIC_OK) {
            fprintf(stderr, "run_model: %s\n", api.last_error());
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = ((double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6) / repeat;
    printf("ran %d time(s) on %d thread(s): %.3f ms per run\n", repeat, api.num_threads(model), ms);
    for (int i = 0, at = 0; i < nout; i++) {
        const aic_tensor_info *t = api.output_info(i);
        const int64_t *shape = out_dims + at;
        size_t n = count(t->rank, shape);
        at += t->rank;
        double lo = INFINITY, hi = -INFINITY, sum = 0;
        for (size_t k = 0; k < n; k++) {
            double v = element(t, outputs[i], k);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
            sum += v;
        }
        describe("output", t, shape);
        printf("  min %.6g max %.6g mean %.6g\n", lo, hi, n ? sum / (double)n : 0.0);
    }
    for (int i = 0; i < nin; i++) free(inputs[i]);
    for (int i = 0; i < nout; i++) free(outputs[i]);
    free(inputs);
    free(outputs);
    free(out_dims);
    api.destroy(model);
    dlclose(lib);
    return 0;
}
