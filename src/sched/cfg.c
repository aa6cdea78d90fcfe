// Classifier-free guidance combine and guidance_rescale (diffusers rescale_noise_cfg).
#include "sched/sched.h"

#include "core/core.h"

#include <math.h>

#ifdef __clang__
#    pragma STDC FP_CONTRACT OFF
#endif

// torch.std (unbiased) of n floats: two passes in double, rounded to float like the f32 result.
static float std_f32(const float *x, size_t n) {
    double mean = 0;
    for (size_t i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    double ss = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)x[i] - mean;
        ss += d * d;
    }
    return (float)sqrt(ss / (double)(n - 1));
}

df_status df_cfg_combine(float *out, const float *eps_u, const float *eps_c, size_t batch,
                         size_t per_sample, float guidance, float guidance_rescale) {
    DF_FAIL_IF(!out || !eps_u || !eps_c, DF_ERR_ARG, "NULL argument");
    DF_FAIL_IF(!(guidance == guidance) || !(guidance_rescale >= 0.0f),
               DF_ERR_ARG, "invalid guidance %g / guidance_rescale %g", (double)guidance,
               (double)guidance_rescale);
    const int rescale = guidance_rescale > 0.0f;
    DF_FAIL_IF(rescale && per_sample < 2, DF_ERR_ARG,
               "guidance_rescale needs at least 2 elements per sample, got %zu", per_sample);
    const float phi = guidance_rescale;
    const float one_minus_phi = (float)(1.0 - (double)guidance_rescale);
    for (size_t b = 0; b < batch; b++) {
        const float *u = eps_u + b * per_sample;
        const float *c = eps_c + b * per_sample;
        float *o = out + b * per_sample;
        // std of the text prediction before `o` (which may alias it) is overwritten
        const float std_text = rescale ? std_f32(c, per_sample) : 0.0f;
        for (size_t i = 0; i < per_sample; i++) o[i] = u[i] + guidance * (c[i] - u[i]);
        if (!rescale) continue;
        const float std_cfg = std_f32(o, per_sample);
        const float ratio = std_text / std_cfg;
        for (size_t i = 0; i < per_sample; i++) {
            const float r = o[i] * ratio;
            o[i] = phi * r + one_minus_phi * o[i];
        }
    }
    return DF_OK;
}
