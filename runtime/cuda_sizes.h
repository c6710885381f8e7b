/* cuda_sizes.h: the tensors of a cuda model at their actual sizes. A model compiled for ranges of
 * sizes copies its inputs and outputs at the sizes the symbols' values give (the output shapes from
 * aic_cuda_plan.output_dims, computed on the host), and writes the values into the arena's dims slot
 * before the launches; a static model reads its data-dependent output sizes back from the arena.
 * Included once by cuda_runtime.c, after it defines aic_model, cuda_error and CHECK. */

/* Copy the actual shape of every output into dims (output 0's rank entries, then output 1's, ...) on the
 * model's stream; the copies land at the next synchronisation (the run lock held). */
static int copy_output_dims(aic_model *m, int64_t *dims) {
    for (int i = 0; i < aic_model_data.num_outputs; i++) {
        const aic_tensor_info *info = &aic_model_data.outputs[i];
        const int64_t *sizes = aic_model_data.output_sizes ? aic_model_data.output_sizes[i] : NULL;
        for (int d = 0; d < info->rank; d++, dims++) {
            *dims = info->shape[d];
            if (sizes == NULL || sizes[d] < 0) continue;
            CUresult r = m->drv.cuMemcpyDtoHAsync(dims, m->arena + (CUdeviceptr)sizes[d], sizeof(int64_t), m->stream);
            if (r != 0) return cuda_error(m, r, "reading an output size");
        }
    }
    return AIC_OK;
}

/* The bytes of a tensor whose dims are `dims` (rank entries), of the element size that `info` has. */
static size_t tensor_bytes(const aic_tensor_info *info, const int64_t *dims) {
    size_t largest = 1, actual = 1;
    for (int d = 0; d < info->rank; d++) {
        largest *= (size_t)info->shape[d];
        actual *= (size_t)dims[d];
    }
    return largest ? info->nbytes / largest * actual : 0;
}

/* The actual dims of input i when the symbols have `values`. */
static void input_dims_at(int i, const int64_t *values, int64_t *dims) {
    const aic_tensor_info *info = &aic_model_data.inputs[i];
    for (int d = 0; d < info->rank; d++) {
        int64_t want = aic_model_data.input_dims ? aic_model_data.input_dims[i][d] : info->shape[d];
        dims[d] = want >= 0 ? want : values[-1 - want];
    }
}

/* Write the symbols' values into the model and the arena's dims slot (the run lock held). */
static int set_dims(aic_model *m, const int64_t *values, CUstream s) {
    int ns = aic_model_data.num_symbols;
    if (ns == 0) return AIC_OK;
    memcpy(m->dims, values, (size_t)ns * sizeof(int64_t));
    if (aic_model_data.dims_offset < 0) return AIC_OK;
    CHECK(m, m->drv.cuMemcpyHtoDAsync(m->arena + (CUdeviceptr)aic_model_data.dims_offset, m->dims,
                                      (size_t)ns * sizeof(int64_t), s),
          "copying the sizes to the device");
    return AIC_OK;
}

/* Copy each output, at its actual shape (computed from the symbols' values), to the host; the shapes to
 * `dims` (may be NULL). */
static int copy_outputs_at_shapes(aic_model *m, void *const *outputs, int64_t *dims) {
    int total = 0;
    for (int i = 0; i < aic_model_data.num_outputs; i++) total += aic_model_data.outputs[i].rank;
    int64_t shapes[total > 0 ? total : 1];
    aic_cuda_plan_data.output_dims(m->dims, shapes);
    const int64_t *at = shapes;
    for (int i = 0; i < aic_model_data.num_outputs; i++) {
        const aic_tensor_info *info = &aic_model_data.outputs[i];
        CHECK(m, m->drv.cuMemcpyDtoHAsync(outputs[i], m->outputs[i], tensor_bytes(info, at), m->stream),
              "copying an output to the host");
        at += info->rank;
    }
    if (dims != NULL) memcpy(dims, shapes, (size_t)total * sizeof(int64_t));
    return AIC_OK;
}
