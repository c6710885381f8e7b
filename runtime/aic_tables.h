/* aic_tables.h: the signature accessors of aic.h over the model's tables (aic_internal.h),
 * `fail`, which records the calling thread's error message, and the check of run-time input dims
 * (`symbol_values`); included once by each runtime (aic_runtime.c for CPUs, cuda_runtime.c for
 * GPUs) after it defines its thread-local `last_error`. */

static int fail(int status, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(last_error, sizeof last_error, format, args);
    va_end(args);
    return status;
}

AIC_API int aic_abi_version(void) { return AIC_ABI_VERSION; }

AIC_API const char *aic_signature(void) { return aic_model_data.json; }

AIC_API int aic_num_inputs(void) { return aic_model_data.num_inputs; }

AIC_API int aic_num_outputs(void) { return aic_model_data.num_outputs; }

AIC_API const aic_tensor_info *aic_input_info(int i) {
    return i >= 0 && i < aic_model_data.num_inputs ? &aic_model_data.inputs[i] : NULL;
}

AIC_API const aic_tensor_info *aic_output_info(int i) {
    return i >= 0 && i < aic_model_data.num_outputs ? &aic_model_data.outputs[i] : NULL;
}

AIC_API const char *aic_last_error(void) { return last_error; }

/* The symbols' values from the actual input dims (NULL: every symbol at its max), each input dim
 * checked against its static size, its symbol's range and the other dims of the same symbol. */
static int symbol_values(const int64_t *input_dims, int64_t *values) {
    const aic_model_info *m = &aic_model_data;
    for (int k = 0; k < m->num_symbols; k++) values[k] = input_dims == NULL ? m->symbols[k].max : -1;
    if (input_dims == NULL) return AIC_OK;
    for (int i = 0, at = 0; i < m->num_inputs; i++) {
        const aic_tensor_info *info = &m->inputs[i];
        for (int d = 0; d < info->rank; d++, at++) {
            int64_t given = input_dims[at], want = m->input_dims ? m->input_dims[i][d] : info->shape[d];
            if (want >= 0) {
                if (given != want)
                    return fail(AIC_ERROR_INVALID_ARGUMENT, "aic_run_dims: input %d ('%s') dim %d is %lld; the model "
                                "takes only %lld there", i, info->name, d, (long long)given, (long long)want);
                continue;
            }
            const aic_symbol_info *s = &m->symbols[-1 - want];
            int64_t *value = &values[-1 - want];
            if (given < s->min || given > s->max)
                return fail(AIC_ERROR_INVALID_ARGUMENT, "aic_run_dims: input %d ('%s') dim %d ('%s') is %lld, outside "
                            "the range %lld..%lld the model was compiled for", i, info->name, d, s->name,
                            (long long)given, (long long)s->min, (long long)s->max);
            if (*value >= 0 && *value != given)
                return fail(AIC_ERROR_INVALID_ARGUMENT, "aic_run_dims: input %d ('%s') dim %d ('%s') is %lld, but an "
                            "earlier input gave '%s' = %lld", i, info->name, d, s->name, (long long)given, s->name,
                            (long long)*value);
            *value = given;
        }
    }
    return AIC_OK;
}
