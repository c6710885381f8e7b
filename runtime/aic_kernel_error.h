/* aic_kernel_error.h: the message of the kernels' error slot (compiler/lower/checks.py), written
 * once for the CPU and CUDA runtimes; each includes it after defining its `fail`. `slot` is the
 * four int64 (code, site, value, position) copied from the arena after a run. */

static int kernel_error_status(const int64_t *slot) {
    if (slot[0] == 0) return AIC_OK;
    int64_t site = slot[1];
    const char *where = site >= 0 && site < aic_model_data.num_error_sites ? aic_model_data.error_sites[site]
                                                                           : "a kernel's run-time check";
    if (slot[3] >= 0)
        return fail(AIC_ERROR_KERNEL, "aic_run: %s; got %lld at flat position %lld", where, (long long)slot[2],
                    (long long)slot[3]);
    return fail(AIC_ERROR_KERNEL, "aic_run: %s; got %lld", where, (long long)slot[2]);
}
