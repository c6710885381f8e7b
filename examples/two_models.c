/* two_models: two models compiled by aic, linked into one program, each called by its prefix.
 *
 *     aic compile double.onnx -o double.so --symbol-prefix twice
 *     aic compile square.onnx -o square.so --symbol-prefix square
 *     cc -O2 -I../runtime two_models.c double.so square.so -Wl,-rpath,'$ORIGIN' -o two_models
 *     ./two_models 1 2 3 4
 *
 * Both .so files export the same aic_* ABI; --symbol-prefix adds twice_aic_* and
 * square_aic_* aliases, and each .so binds its own calls internally, so the two never mix.
 * Each model here takes one float32 vector and returns one of the same size; the program
 * feeds its arguments to both and prints both results. The rpath $ORIGIN lets the program
 * find the .so files next to it wherever the folder is moved.
 */
#include <stdio.h>
#include <stdlib.h>

#include "aic.h"

AIC_DECLARE_PREFIXED(twice)
AIC_DECLARE_PREFIXED(square)

static int run(const char *name, aic_model *model, int (*run_fn)(aic_model *, const void *const *, void *const *),
               const char *(*error)(void), const float *x, float *y, int n) {
    const void *inputs[] = {x};
    void *outputs[] = {y};
    if (model == NULL || run_fn(model, inputs, outputs) != AIC_OK) {
        fprintf(stderr, "two_models: %s: %s\n", name, error());
        return 1;
    }
    printf("%s:", name);
    for (int i = 0; i < n; i++) printf(" %g", y[i]);
    printf("\n");
    return 0;
}

int main(int argc, char **argv) {
    int n = (int)(twice_aic_input_info(0)->nbytes / sizeof(float));
    if (argc - 1 != n || (size_t)n * sizeof(float) != square_aic_input_info(0)->nbytes) {
        fprintf(stderr, "usage: %s X1 ... X%d (the models' input size)\n", argv[0], n);
        return 2;
    }
    float *x = calloc((size_t)n, sizeof(float)), *y = calloc((size_t)n, sizeof(float));
    for (int i = 0; i < n; i++) x[i] = strtof(argv[i + 1], NULL);
    aic_model *a = twice_aic_create(1), *b = square_aic_create(1);
    int status = run("twice", a, twice_aic_run, twice_aic_last_error, x, y, n) ||
                 run("square", b, square_aic_run, square_aic_last_error, x, y, n);
    twice_aic_destroy(a);
    square_aic_destroy(b);
    free(x);
    free(y);
    return status;
}
