/* aic_tables.h: the signature accessors of aic.h over the model's tables (aic_internal.h) and
 * `fail`, which records the calling thread's error message; included once by each runtime
 * (aic_runtime.c for CPUs, cuda_runtime.c for GPUs) after it defines its thread-local `last_error`. */

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
