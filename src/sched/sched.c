// Diffusion schedulers with diffusers 0.24 numerics (see sched.h).
//
// Precision follows what diffusers/torch/numpy compute:
// - betas: torch.linspace in float32 (its vectorised kernel: blocks of 8 lanes, base + j*step,
//   the first half counted from start, the second from end), squared in float32;
//   alphas_cumprod: torch.cumprod (double accumulator, float32 results).
// - timesteps: numpy (float64 arange / linspace / round half-to-even), cast as each class does.
// - Euler/DPM sigmas: float32 table sqrt((1 - a)/a), np.interp in float64, cast to float32.
// - step(): every scalar coefficient is a float32 0-d tensor op and every elementwise op is one
//   float32 rounding, in the order the Python expression evaluates it.
#include "sched/sched.h"

#include "core/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef __clang__
#    pragma STDC FP_CONTRACT OFF
#endif

// ---------------------------------------------------------------------------------------------
// kind names

static const char *const kind_names[DF_SCHED_KIND_COUNT] = {
    [DF_SCHED_NONE] = "none",       [DF_SCHED_DDIM] = "ddim",       [DF_SCHED_EULER] = "euler",
    [DF_SCHED_EULER_A] = "euler_a", [DF_SCHED_DPMPP_2M] = "dpm++2m", [DF_SCHED_PNDM] = "pndm",
};

static const struct {
    const char *name;
    df_sched_kind kind;
} kind_aliases[] = {
    {"ddim", DF_SCHED_DDIM},
    {"euler", DF_SCHED_EULER},
    {"euler_a", DF_SCHED_EULER_A},
    {"euler-a", DF_SCHED_EULER_A},
    {"euler_ancestral", DF_SCHED_EULER_A},
    {"dpm++2m", DF_SCHED_DPMPP_2M},
    {"dpmpp2m", DF_SCHED_DPMPP_2M},
    {"dpmpp_2m", DF_SCHED_DPMPP_2M},
    {"dpm++", DF_SCHED_DPMPP_2M},
    {"pndm", DF_SCHED_PNDM},
    {"plms", DF_SCHED_PNDM},
    {"DDIMScheduler", DF_SCHED_DDIM},
    {"EulerDiscreteScheduler", DF_SCHED_EULER},
    {"EulerAncestralDiscreteScheduler", DF_SCHED_EULER_A},
    {"DPMSolverMultistepScheduler", DF_SCHED_DPMPP_2M},
    {"PNDMScheduler", DF_SCHED_PNDM},
};

df_status df_sched_kind_parse(const char *name, df_sched_kind *out) {
    DF_FAIL_IF(!out, DF_ERR_ARG, "out is NULL");
    *out = DF_SCHED_NONE;
    DF_FAIL_IF(!name, DF_ERR_ARG, "scheduler name is NULL");
    for (size_t i = 0; i < sizeof kind_aliases / sizeof kind_aliases[0]; i++) {
        if (strcmp(name, kind_aliases[i].name) == 0) {
            *out = kind_aliases[i].kind;
            return DF_OK;
        }
    }
    return DF_ERROR(DF_ERR_ARG,
                    "unknown scheduler \"%s\" (expected ddim, euler, euler_a, dpm++2m or pndm)",
                    name);
}

const char *df_sched_kind_name(df_sched_kind k) {
    if ((int)k < 0 || k >= DF_SCHED_KIND_COUNT) return "invalid";
    return kind_names[k];
}

df_sched_kind df_sched_kind_from_class(const char *class_name) {
    if (!class_name) return DF_SCHED_NONE;
    if (!strcmp(class_name, "DDIMScheduler")) return DF_SCHED_DDIM;
    if (!strcmp(class_name, "EulerDiscreteScheduler")) return DF_SCHED_EULER;
    if (!strcmp(class_name, "EulerAncestralDiscreteScheduler")) return DF_SCHED_EULER_A;
    if (!strcmp(class_name, "DPMSolverMultistepScheduler")) return DF_SCHED_DPMPP_2M;
    if (!strcmp(class_name, "PNDMScheduler")) return DF_SCHED_PNDM;
    return DF_SCHED_NONE;
}

// ---------------------------------------------------------------------------------------------
// config defaults

void df_sched_config_init(df_sched_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->num_train_timesteps = 0;
    cfg->beta_start = NAN;
    cfg->beta_end = NAN;
    cfg->steps_offset = -1;
    cfg->set_alpha_to_one = -1;
    cfg->clip_sample = -1;
    cfg->clip_sample_range = NAN;
    cfg->skip_prk_steps = -1;
    cfg->solver_order = 0;
    cfg->lower_order_final = -1;
    cfg->euler_at_final = -1;
    cfg->lambda_min_clipped = NAN;
    cfg->use_karras_sigmas = -1;
    cfg->thresholding = -1;
    cfg->rescale_betas_zero_snr = -1;
    cfg->has_trained_betas = 0;
    cfg->interpolation_log_linear = 0;
    cfg->timestep_type_continuous = 0;
}

df_sched_config df_sched_config_default_sdxl(void) {
    df_sched_config c;
    df_sched_config_init(&c);
    c.num_train_timesteps = 1000;
    c.beta_start = 0.00085;
    c.beta_end = 0.012;
    c.beta_schedule = DF_BETA_SCALED_LINEAR;
    c.prediction_type = DF_PRED_EPSILON;
    c.timestep_spacing = DF_SPACING_LEADING;
    c.steps_offset = 1;
    c.set_alpha_to_one = 0;
    c.clip_sample = 0;
    c.skip_prk_steps = 1;
    c.use_karras_sigmas = 0;
    return c;
}

// ---------------------------------------------------------------------------------------------
// the object

#define PNDM_MAX_ETS 4

struct df_sched {
    df_sched_kind kind;
    // resolved configuration
    int T;                       // num_train_timesteps
    df_prediction_type pred;     // EPSILON or V
    df_timestep_spacing spacing; // never DEFAULT
    int steps_offset;
    int clip_sample;
    float clip_range;
    int solver_order;
    df_dpm_algorithm algo;
    df_dpm_solver_type solver_type;
    int lower_order_final, euler_at_final;

    int n_steps; // num_inference_steps (DPM: after removing duplicate timesteps)
    int n_calls;
    float *betas;          // [T]
    float *alphas_cumprod; // [T]
    float final_alpha_cumprod;
    float init_noise_sigma;
    float *timesteps;   // [n_calls] as the model sees them
    int *timestep_idx;  // [n_calls] integer timesteps (DDIM, DPM, PNDM)
    float *sigmas;      // [n_steps + 1] (Euler, Euler a, DPM)
    int n_sigmas;
    int step_ratio;     // T // n_steps (DDIM / PNDM prev_timestep)

    // multistep state
    size_t numel;
    float *state;       // one allocation for the buffers below
    int next_call;
    // PNDM
    int counter;
    int n_ets;
    float *ets[PNDM_MAX_ETS]; // ets[0] oldest .. ets[n_ets-1] newest
    float *cur_sample;
    // DPM
    float *x0_prev, *x0_cur;
    int lower_order_nums;
};

void df_sched_destroy(df_sched *s) {
    if (!s) return;
    df_free(s->betas);
    df_free(s->alphas_cumprod);
    df_free(s->timesteps);
    df_free(s->timestep_idx);
    df_free(s->sigmas);
    df_free(s->state);
    free(s);
}

void df_sched_reset(df_sched *s) {
    if (!s) return;
    s->next_call = 0;
    s->counter = 0;
    s->n_ets = 0;
    s->lower_order_nums = 0;
}

// ---------------------------------------------------------------------------------------------
// numpy / torch emulation helpers

// torch.linspace(start, end, steps, dtype=float32) on CPU (steps >= 2): the kernel's vectorised
// loop writes blocks of 2 x 8 lanes as base + j * step (base from start below steps/2, from end
// above), the tail scalar. torch's AVX2 build contracts `start + step * idx` into an FMA, which
// the golden betas confirm (bit-exact only with fused bases).
static void torch_linspace_f32(double start_d, double end_d, int steps, float *out) {
    const float start = (float)start_d, end = (float)end_d;
    const float step = (end - start) / (float)(steps - 1);
    const int64_t halfway = steps / 2;
    const int vec = 8;
    int64_t i = 0;
    for (; i + 2 * vec <= steps; i += 2 * vec) {
        for (int half = 0; half < 2; half++) {
            const int64_t idx = i + half * vec;
            const float base = idx < halfway ? fmaf(step, (float)idx, start)
                                             : fmaf(-step, (float)(steps - idx - 1), end);
            for (int j = 0; j < vec; j++) out[idx + j] = fmaf((float)j, step, base);
        }
    }
    for (; i < steps; i++)
        out[i] = i < halfway ? fmaf(step, (float)i, start)
                             : fmaf(-step, (float)(steps - i - 1), end);
}

// np.arange(start, stop, step) for doubles; returns the length (<= cap) or -1 if > cap.
static int np_arange_f64(double start, double stop, double step, double *out, int cap) {
    const double tmp_len = (stop - start) / step;
    int64_t len;
    if (tmp_len == 0.0 && stop - start != 0.0) len = signbit(tmp_len) ? 0 : 1;
    else len = (int64_t)ceil(tmp_len);
    if (len <= 0) return 0;
    if (len > cap) return -1;
    out[0] = start;
    if (len > 1) out[1] = start + step;
    const double delta = (len > 1) ? out[1] - out[0] : 0.0;
    for (int64_t i = 2; i < len; i++) out[i] = start + (double)i * delta;
    return (int)len;
}

// np.linspace(start, stop, num) (float64, endpoint=True).
static void np_linspace_f64(double start, double stop, int num, double *out) {
    if (num == 1) {
        out[0] = start;
        return;
    }
    const double step = (stop - start) / (double)(num - 1);
    for (int i = 0; i < num; i++) out[i] = (double)i * step + start;
    out[num - 1] = stop;
}

// np.interp(x, arange(len), fp) in float64.
static double np_interp_index(double x, const float *fp, int len) {
    if (isnan(x)) return x;
    if (x < 0.0) return fp[0];
    if (x > (double)(len - 1)) return fp[len - 1];
    const int j = (int)floor(x);
    if (j >= len - 1) return fp[len - 1];
    if ((double)j == x) return fp[j];
    const double slope = ((double)fp[j + 1] - (double)fp[j]) / 1.0;
    double r = slope * (x - (double)j) + (double)fp[j];
    if (isnan(r)) {
        r = slope * (x - (double)(j + 1)) + (double)fp[j + 1];
        if (isnan(r) && fp[j] == fp[j + 1]) r = fp[j];
    }
    return r;
}

// round half to even (np.round)
static double np_round(double x) { return rint(x); }

// "trailing": round(np.arange(last, 0, -T / n)) - 1. For some n (61, 103, 121, ... with T = 1000)
// numpy's float arange yields n + 1 values, the last ~1e-13, so diffusers 0.24 appends a bogus
// timestep -1 (DDIM then reads alphas_cumprod[-1]); we drop such negative trailing entries.
// Returns the count (<= cap) or -1.
static int trailing_timesteps(int T, int last, int n, double *out, int cap) {
    int len = np_arange_f64((double)last, 0.0, -((double)T / n), out, cap);
    if (len < 0) return -1;
    for (int i = 0; i < len; i++) out[i] = np_round(out[i]) - 1.0;
    while (len > 0 && out[len - 1] < 0) len--;
    return len;
}

// ---------------------------------------------------------------------------------------------
// training tables

static df_status build_betas(df_sched *s, const df_sched_config *cfg) {
    const int T = s->T;
    const double b0 = isnan(cfg->beta_start) ? 0.0001 : cfg->beta_start;
    const double b1 = isnan(cfg->beta_end) ? 0.02 : cfg->beta_end;
    df_beta_schedule sch = cfg->beta_schedule == DF_BETA_DEFAULT ? DF_BETA_LINEAR
                                                                 : cfg->beta_schedule;
    DF_FAIL_IF(sch != DF_BETA_SQUAREDCOS_CAP_V2 && !(b0 > 0 && b1 > 0 && b0 < 1 && b1 < 1),
               DF_ERR_ARG, "beta_start %g / beta_end %g must be in (0, 1)", b0, b1);
    s->betas = df_malloc((size_t)T * sizeof(float));
    s->alphas_cumprod = df_malloc((size_t)T * sizeof(float));
    DF_FAIL_IF(!s->betas || !s->alphas_cumprod, DF_ERR_NOMEM, "scheduler tables (%d)", T);
    switch (sch) {
    case DF_BETA_LINEAR:
        torch_linspace_f32(b0, b1, T, s->betas);
        break;
    case DF_BETA_SCALED_LINEAR:
        torch_linspace_f32(sqrt(b0), sqrt(b1), T, s->betas);
        for (int i = 0; i < T; i++) s->betas[i] = s->betas[i] * s->betas[i];
        break;
    case DF_BETA_SQUAREDCOS_CAP_V2:
        // betas_for_alpha_bar (cosine), Python floats, then torch.tensor(float32)
        for (int i = 0; i < T; i++) {
            const double t1 = (double)i / T, t2 = (double)(i + 1) / T;
            const double a1 = cos((t1 + 0.008) / 1.008 * M_PI / 2);
            const double a2 = cos((t2 + 0.008) / 1.008 * M_PI / 2);
            const double b = 1.0 - (a2 * a2) / (a1 * a1);
            s->betas[i] = (float)(b < 0.999 ? b : 0.999);
        }
        break;
    default:
        return DF_ERROR(DF_ERR_ARG, "invalid beta_schedule %d", (int)sch);
    }
    // alphas = 1.0 - betas (f32); alphas_cumprod = torch.cumprod (double accumulator)
    double acc = 1.0;
    for (int i = 0; i < T; i++) {
        const float a = 1.0f - s->betas[i];
        acc *= (double)a;
        s->alphas_cumprod[i] = (float)acc;
    }
    return DF_OK;
}

// sigma_train[t] = ((1 - a) / a) ** 0.5 in float32
static float train_sigma(float a) { return sqrtf((1.0f - a) / a); }

// ---------------------------------------------------------------------------------------------
// timesteps

// "leading" spacing (DDIM, PNDM, Euler): (n-1-i) * (T / n) + steps_offset, descending.
static void leading_timesteps(const df_sched *s, int n, double *t) {
    const int ratio = s->T / n;
    for (int i = 0; i < n; i++) t[i] = (double)((int64_t)(n - 1 - i) * ratio);
    for (int i = 0; i < n; i++) t[i] += s->steps_offset;
}

// DDIM / PNDM base timesteps (descending for DDIM, ascending `_timesteps` for PNDM) as doubles.
static df_status integer_timesteps(df_sched *s, int n, double *t) {
    const int T = s->T;
    switch (s->spacing) {
    case DF_SPACING_LEADING:
        leading_timesteps(s, n, t);
        break;
    case DF_SPACING_TRAILING: {
        double *tmp = malloc(sizeof(double) * (size_t)(n + 2));
        DF_FAIL_IF(!tmp, DF_ERR_NOMEM, "timesteps");
        const int len = trailing_timesteps(T, T, n, tmp, n + 2);
        if (len != n) {
            free(tmp);
            return DF_ERROR(DF_ERR_ARG, "trailing spacing gives %d timesteps for %d steps", len,
                            n);
        }
        memcpy(t, tmp, sizeof(double) * (size_t)n);
        free(tmp);
        break;
    }
    case DF_SPACING_LINSPACE: {
        np_linspace_f64(0.0, (double)(T - 1), n, t);
        for (int i = 0; i < n / 2; i++) {
            const double x = t[i];
            t[i] = t[n - 1 - i];
            t[n - 1 - i] = x;
        }
        for (int i = 0; i < n; i++) t[i] = (double)(int64_t)np_round(t[i]);
        break;
    }
    default:
        return DF_ERROR(DF_ERR_INTERNAL, "spacing %d", (int)s->spacing);
    }
    return DF_OK;
}

// The most inference steps "leading" spacing allows: its largest timestep
// (n-1) * (T // n) + steps_offset must stay <= T - 1 (diffusers computes the same list and then
// indexes alphas_cumprod[T] out of range, e.g. PNDM / DDIM with 1000 steps and steps_offset 1).
static int leading_max_steps(int T, int offset) {
    for (int n = T; n >= 1; n--)
        if ((int64_t)(n - 1) * (T / n) + offset <= T - 1) return n;
    return 0;
}

static df_status check_index(const df_sched *s, double t) {
    if (t >= 0 && t <= s->T - 1) return DF_OK;
    if (s->spacing == DF_SPACING_LEADING && s->steps_offset > 0 && t > s->T - 1)
        return DF_ERROR(DF_ERR_ARG,
                        "%s: %d steps give timestep %g outside [0, %d] (\"leading\" spacing "
                        "with steps_offset %d and %d training timesteps): use at most %d "
                        "steps",
                        df_sched_kind_name(s->kind), s->n_steps, t, s->T - 1, s->steps_offset,
                        s->T, leading_max_steps(s->T, s->steps_offset));
    return DF_ERROR(DF_ERR_ARG,
                    "%s: timestep %g outside [0, %d] (n_steps %d, num_train_timesteps %d, "
                    "steps_offset %d)",
                    df_sched_kind_name(s->kind), t, s->T - 1, s->n_steps, s->T, s->steps_offset);
}

static df_status alloc_calls(df_sched *s, int n_calls) {
    s->n_calls = n_calls;
    s->timesteps = df_malloc(sizeof(float) * (size_t)n_calls);
    s->timestep_idx = df_malloc(sizeof(int) * (size_t)n_calls);
    DF_FAIL_IF(!s->timesteps || !s->timestep_idx, DF_ERR_NOMEM, "timesteps");
    return DF_OK;
}

static df_status setup_ddim(df_sched *s, int n) {
    double *t = malloc(sizeof(double) * (size_t)n);
    DF_FAIL_IF(!t, DF_ERR_NOMEM, "timesteps");
    df_status st = integer_timesteps(s, n, t);
    if (st == DF_OK) st = alloc_calls(s, n);
    for (int i = 0; st == DF_OK && i < n; i++) {
        st = check_index(s, t[i]);
        s->timestep_idx[i] = (int)t[i];
        s->timesteps[i] = (float)t[i];
    }
    free(t);
    s->step_ratio = s->T / n;
    s->init_noise_sigma = 1.0f;
    return st;
}

static df_status setup_pndm(df_sched *s, int n) {
    double *t = malloc(sizeof(double) * (size_t)n);
    DF_FAIL_IF(!t, DF_ERR_NOMEM, "timesteps");
    df_status st = integer_timesteps(s, n, t);
    // integer_timesteps gives them descending; PNDM's _timesteps are ascending:
    // plms = concat(_t[:-1], _t[-2:-1], _t[-1:])[::-1] = [t_{n-1}, t_{n-2}, t_{n-2}, ..., t_0]
    // in ascending-index terms, i.e. the descending list with its second entry repeated.
    const int n_calls = n >= 2 ? n + 1 : 1;
    if (st == DF_OK) st = alloc_calls(s, n_calls);
    if (st == DF_OK) {
        int k = 0;
        for (int i = 0; i < n; i++) {
            s->timestep_idx[k++] = (int)t[i];
            if (i == 1) s->timestep_idx[k++] = (int)t[i];
        }
        for (int i = 0; st == DF_OK && i < n_calls; i++) {
            st = check_index(s, s->timestep_idx[i]);
            s->timesteps[i] = (float)s->timestep_idx[i];
        }
    }
    free(t);
    s->step_ratio = s->T / n;
    s->init_noise_sigma = 1.0f;
    return st;
}

static df_status setup_euler(df_sched *s, int n) {
    const int T = s->T;
    const int ancestral = s->kind == DF_SCHED_EULER_A;
    double *t = malloc(sizeof(double) * (size_t)(n + 2));
    float *sig_train = malloc(sizeof(float) * (size_t)T);
    df_status st = DF_OK;
    if (!t || !sig_train) {
        st = DF_ERROR(DF_ERR_NOMEM, "timesteps");
        goto done;
    }
    switch (s->spacing) {
    case DF_SPACING_LINSPACE:
        np_linspace_f64(0.0, (double)(T - 1), n, t);
        for (int i = 0; i < n / 2; i++) {
            const double x = t[i];
            t[i] = t[n - 1 - i];
            t[n - 1 - i] = x;
        }
        // EulerDiscrete: dtype=np.float32; EulerAncestral: dtype=float
        if (!ancestral)
            for (int i = 0; i < n; i++) t[i] = (double)(float)t[i];
        break;
    case DF_SPACING_LEADING:
        leading_timesteps(s, n, t);
        break;
    case DF_SPACING_TRAILING: {
        // (EulerDiscrete casts to float32 before the -1: exact for these integers)
        const int len = trailing_timesteps(T, T, n, t, n + 2);
        if (len != n) {
            st = DF_ERROR(DF_ERR_ARG, "trailing spacing gives %d timesteps for %d steps", len,
                          n);
            goto done;
        }
        break;
    }
    default:
        st = DF_ERROR(DF_ERR_INTERNAL, "spacing %d", (int)s->spacing);
        goto done;
    }
    st = alloc_calls(s, n);
    if (st != DF_OK) goto done;
    s->n_sigmas = n + 1;
    s->sigmas = df_malloc(sizeof(float) * (size_t)(n + 1));
    if (!s->sigmas) {
        st = DF_ERROR(DF_ERR_NOMEM, "sigmas");
        goto done;
    }
    for (int i = 0; i < T; i++) sig_train[i] = train_sigma(s->alphas_cumprod[i]);
    float max_sigma = 0.0f;
    for (int i = 0; i < n; i++) {
        s->timesteps[i] = (float)t[i];
        s->timestep_idx[i] = (int)t[i];
        s->sigmas[i] = (float)np_interp_index(t[i], sig_train, T);
        if (s->sigmas[i] > max_sigma) max_sigma = s->sigmas[i];
    }
    s->sigmas[n] = 0.0f;
    if (s->spacing == DF_SPACING_LINSPACE || s->spacing == DF_SPACING_TRAILING)
        s->init_noise_sigma = max_sigma;
    else s->init_noise_sigma = sqrtf(max_sigma * max_sigma + 1.0f);
done:
    free(t);
    free(sig_train);
    return st;
}

static df_status setup_dpm(df_sched *s, int n, double lambda_min_clipped) {
    const int T = s->T;
    // last_timestep = T - searchsorted(flip(lambda_t), lambda_min_clipped)
    int clipped = 0;
    if (!isnan(lambda_min_clipped) && lambda_min_clipped > -INFINITY) {
        // lambda_t = log(sqrt(a)) - log(sqrt(1 - a)), decreasing in t; flipped it increases.
        for (int k = 0; k < T; k++) {
            const float a = s->alphas_cumprod[T - 1 - k];
            const float lam = logf(sqrtf(a)) - logf(sqrtf(1.0f - a));
            if ((double)lam < lambda_min_clipped) clipped = k + 1;
            else break;
        }
    }
    const int last = T - clipped;
    double *t = malloc(sizeof(double) * (size_t)(n + 3));
    df_status st = DF_OK;
    DF_FAIL_IF(!t, DF_ERR_NOMEM, "timesteps");
    int len = n;
    switch (s->spacing) {
    case DF_SPACING_LINSPACE:
        np_linspace_f64(0.0, (double)(last - 1), n + 1, t);
        // .round()[::-1][:-1]: reverse all n + 1, keep the first n
        for (int i = 0; i < (n + 1) / 2; i++) {
            const double x = t[i];
            t[i] = t[n - i];
            t[n - i] = x;
        }
        for (int i = 0; i < n; i++) t[i] = np_round(t[i]);
        break;
    case DF_SPACING_LEADING: {
        const int ratio = last / (n + 1);
        for (int i = 0; i < n; i++) t[i] = (double)((int64_t)(n - i) * ratio + s->steps_offset);
        break;
    }
    case DF_SPACING_TRAILING: {
        len = trailing_timesteps(T, last, n, t, n + 3);
        if (len < 1) {
            free(t);
            return DF_ERROR(DF_ERR_ARG, "trailing spacing gives no timesteps for %d steps", n);
        }
        break;
    }
    default:
        free(t);
        return DF_ERROR(DF_ERR_INTERNAL, "spacing %d", (int)s->spacing);
    }
    // drop repeated timesteps (keeps the first of each value; only happens for n close to T)
    int m = 0;
    for (int i = 0; i < len; i++) {
        int dup = 0;
        for (int j = 0; j < m && !dup; j++) dup = t[j] == t[i];
        if (!dup) t[m++] = t[i];
    }
    len = m;
    s->n_steps = len;
    st = alloc_calls(s, len);
    for (int i = 0; st == DF_OK && i < len; i++) {
        st = check_index(s, t[i]);
        s->timestep_idx[i] = (int)t[i];
        s->timesteps[i] = (float)t[i];
    }
    free(t);
    DF_TRY(st);
    s->n_sigmas = len + 1;
    s->sigmas = df_malloc(sizeof(float) * (size_t)(len + 1));
    DF_FAIL_IF(!s->sigmas, DF_ERR_NOMEM, "sigmas");
    for (int i = 0; i < len; i++)
        s->sigmas[i] = train_sigma(s->alphas_cumprod[s->timestep_idx[i]]);
    // diffusers 0.24: the final sigma is sigma_train[0], not 0
    s->sigmas[len] = train_sigma(s->alphas_cumprod[0]);
    s->init_noise_sigma = 1.0f;
    return DF_OK;
}

// ---------------------------------------------------------------------------------------------
// create

static df_status alloc_state(df_sched *s, size_t numel) {
    size_t nbuf = 0;
    if (s->kind == DF_SCHED_PNDM) nbuf = PNDM_MAX_ETS + 1;
    else if (s->kind == DF_SCHED_DPMPP_2M) nbuf = 2;
    s->numel = numel;
    if (nbuf == 0 || numel == 0) return DF_OK;
    size_t per = (numel + 15) & ~(size_t)15, total;
    DF_FAIL_IF(!df_i_mul_size(per, nbuf * sizeof(float), &total), DF_ERR_ARG,
               "latent size %zu too large", numel);
    s->state = df_malloc(total);
    DF_FAIL_IF(!s->state, DF_ERR_NOMEM, "scheduler state (%zu bytes)", total);
    if (s->kind == DF_SCHED_PNDM) {
        for (int k = 0; k < PNDM_MAX_ETS; k++) s->ets[k] = s->state + (size_t)k * per;
        s->cur_sample = s->state + (size_t)PNDM_MAX_ETS * per;
    } else {
        s->x0_prev = s->state;
        s->x0_cur = s->state + per;
    }
    return DF_OK;
}

static df_status resolve_config(df_sched *s, const df_sched_config *c) {
    const df_sched_kind k = s->kind;
    const char *kn = df_sched_kind_name(k);
    s->T = c->num_train_timesteps > 0 ? c->num_train_timesteps : 1000;
    DF_FAIL_IF(c->num_train_timesteps < 0 || s->T < 2, DF_ERR_ARG,
               "num_train_timesteps %d must be >= 2", c->num_train_timesteps);
    DF_FAIL_IF(s->T > 100000, DF_ERR_ARG, "num_train_timesteps %d is too large", s->T);
    s->pred = c->prediction_type == DF_PRED_DEFAULT ? DF_PRED_EPSILON : c->prediction_type;
    DF_FAIL_IF(s->pred == DF_PRED_SAMPLE, DF_ERR_UNSUPPORTED,
               "%s: prediction_type \"sample\" is not supported (epsilon, v_prediction)", kn);
    DF_FAIL_IF(s->pred != DF_PRED_EPSILON && s->pred != DF_PRED_V, DF_ERR_ARG,
               "invalid prediction_type %d", (int)c->prediction_type);
    if (c->timestep_spacing == DF_SPACING_DEFAULT)
        s->spacing = (k == DF_SCHED_DDIM || k == DF_SCHED_PNDM) ? DF_SPACING_LEADING
                                                                 : DF_SPACING_LINSPACE;
    else s->spacing = c->timestep_spacing;
    DF_FAIL_IF(s->spacing != DF_SPACING_LEADING && s->spacing != DF_SPACING_TRAILING &&
                   s->spacing != DF_SPACING_LINSPACE,
               DF_ERR_ARG, "invalid timestep_spacing %d", (int)c->timestep_spacing);
    s->steps_offset = c->steps_offset >= 0 ? c->steps_offset : 0;
    DF_FAIL_IF(c->steps_offset < -1, DF_ERR_ARG, "steps_offset %d must be >= 0",
               c->steps_offset);
    s->clip_sample = k == DF_SCHED_DDIM ? (c->clip_sample >= 0 ? c->clip_sample : 1) : 0;
    s->clip_range = isnan(c->clip_sample_range) ? 1.0f : (float)c->clip_sample_range;
    s->solver_order = c->solver_order > 0 ? c->solver_order : 2;
    s->algo = c->algorithm_type == DF_DPM_ALGO_DEFAULT ? DF_DPM_ALGO_DPMSOLVER_PP
                                                       : c->algorithm_type;
    s->solver_type = c->solver_type == DF_DPM_SOLVER_DEFAULT ? DF_DPM_SOLVER_MIDPOINT
                                                             : c->solver_type;
    s->lower_order_final = c->lower_order_final >= 0 ? c->lower_order_final : 1;
    s->euler_at_final = c->euler_at_final >= 0 ? c->euler_at_final : 0;

    // options we do not implement
    DF_FAIL_IF(c->has_trained_betas, DF_ERR_UNSUPPORTED, "%s: trained_betas is not supported",
               kn);
    DF_FAIL_IF(c->thresholding > 0 && (k == DF_SCHED_DDIM || k == DF_SCHED_DPMPP_2M),
               DF_ERR_UNSUPPORTED, "%s: thresholding is not supported", kn);
    DF_FAIL_IF(c->rescale_betas_zero_snr > 0 && k == DF_SCHED_DDIM, DF_ERR_UNSUPPORTED,
               "%s: rescale_betas_zero_snr is not supported", kn);
    if (k == DF_SCHED_EULER || k == DF_SCHED_DPMPP_2M)
        DF_FAIL_IF(c->use_karras_sigmas > 0, DF_ERR_UNSUPPORTED,
                   "%s: use_karras_sigmas is not supported", kn);
    if (k == DF_SCHED_EULER) {
        DF_FAIL_IF(c->interpolation_log_linear, DF_ERR_UNSUPPORTED,
                   "%s: interpolation_type log_linear is not supported", kn);
        DF_FAIL_IF(c->timestep_type_continuous, DF_ERR_UNSUPPORTED,
                   "%s: timestep_type continuous is not supported", kn);
    }
    if (k == DF_SCHED_PNDM)
        DF_FAIL_IF(c->skip_prk_steps != 1, DF_ERR_UNSUPPORTED,
                   "pndm: skip_prk_steps must be true (PRK warm-up steps are not implemented)");
    if (k == DF_SCHED_DPMPP_2M) {
        DF_FAIL_IF(s->solver_order != 1 && s->solver_order != 2, DF_ERR_UNSUPPORTED,
                   "dpm++2m: solver_order %d is not supported (1 or 2)", s->solver_order);
        DF_FAIL_IF(s->algo != DF_DPM_ALGO_DPMSOLVER_PP && s->algo != DF_DPM_ALGO_DPMSOLVER,
                   DF_ERR_ARG, "dpm++2m: invalid algorithm_type %d", (int)s->algo);
        DF_FAIL_IF(s->solver_type != DF_DPM_SOLVER_MIDPOINT && s->solver_type != DF_DPM_SOLVER_HEUN,
                   DF_ERR_ARG, "dpm++2m: invalid solver_type %d", (int)s->solver_type);
    }
    return DF_OK;
}

df_status df_sched_create(df_sched_kind kind, const df_sched_config *cfg, int n_steps,
                          size_t numel, df_sched **out) {
    DF_FAIL_IF(!out, DF_ERR_ARG, "out is NULL");
    *out = NULL;
    DF_FAIL_IF(kind <= DF_SCHED_NONE || kind >= DF_SCHED_KIND_COUNT, DF_ERR_ARG,
               "unknown scheduler kind %d (expected ddim, euler, euler_a, dpm++2m or pndm)",
               (int)kind);
    df_sched_config def;
    if (!cfg) {
        df_sched_config_init(&def);
        cfg = &def;
    }
    DF_FAIL_IF(n_steps <= 0, DF_ERR_ARG, "%s: number of inference steps must be > 0, got %d",
               df_sched_kind_name(kind), n_steps);
    df_sched *s = calloc(1, sizeof *s);
    DF_FAIL_IF(!s, DF_ERR_NOMEM, "scheduler");
    s->kind = kind;
    df_status st = resolve_config(s, cfg);
    if (st == DF_OK && n_steps > s->T)
        st = DF_ERROR(DF_ERR_ARG,
                      "%s: number of inference steps %d exceeds num_train_timesteps %d",
                      df_sched_kind_name(kind), n_steps, s->T);
    s->n_steps = n_steps;
    if (st == DF_OK) st = build_betas(s, cfg);
    if (st == DF_OK) {
        const int set_one = cfg->set_alpha_to_one >= 0 ? cfg->set_alpha_to_one
                                                       : (kind == DF_SCHED_DDIM ? 1 : 0);
        s->final_alpha_cumprod = set_one ? 1.0f : s->alphas_cumprod[0];
        switch (kind) {
        case DF_SCHED_DDIM: st = setup_ddim(s, n_steps); break;
        case DF_SCHED_PNDM: st = setup_pndm(s, n_steps); break;
        case DF_SCHED_EULER:
        case DF_SCHED_EULER_A: st = setup_euler(s, n_steps); break;
        case DF_SCHED_DPMPP_2M: st = setup_dpm(s, n_steps, cfg->lambda_min_clipped); break;
        default: st = DF_ERROR(DF_ERR_INTERNAL, "kind %d", (int)kind); break;
        }
    }
    if (st == DF_OK) st = alloc_state(s, numel);
    if (st != DF_OK) {
        df_sched_destroy(s);
        return st;
    }
    df_sched_reset(s);
    *out = s;
    return DF_OK;
}

// ---------------------------------------------------------------------------------------------
// accessors

df_sched_kind df_sched_get_kind(const df_sched *s) { return s->kind; }
int df_sched_n_steps(const df_sched *s) { return s->n_steps; }
int df_sched_n_calls(const df_sched *s) { return s->n_calls; }
float df_sched_init_noise_sigma(const df_sched *s) { return s->init_noise_sigma; }
int df_sched_needs_noise(const df_sched *s) { return s->kind == DF_SCHED_EULER_A; }

float df_sched_timestep(const df_sched *s, int i) {
    if (i < 0 || i >= s->n_calls) return NAN;
    return s->timesteps[i];
}

const float *df_sched_sigmas(const df_sched *s, int *count) {
    if (count) *count = s->sigmas ? s->n_sigmas : 0;
    return s->sigmas;
}

const float *df_sched_betas(const df_sched *s, int *count) {
    if (count) *count = s->T;
    return s->betas;
}

const float *df_sched_alphas_cumprod(const df_sched *s, int *count) {
    if (count) *count = s->T;
    return s->alphas_cumprod;
}

void df_sched_init_latents(const df_sched *s, float *x, size_t n) {
    const float k = s->init_noise_sigma;
    if (k == 1.0f) return;
    for (size_t j = 0; j < n; j++) x[j] = x[j] * k;
}

df_status df_sched_scale_model_input(const df_sched *s, int i, const float *x, float *out,
                                     size_t n) {
    DF_FAIL_IF(!s || !x || !out, DF_ERR_ARG, "NULL argument");
    DF_FAIL_IF(i < 0 || i >= s->n_calls, DF_ERR_ARG, "%s: call index %d outside [0, %d)",
               df_sched_kind_name(s->kind), i, s->n_calls);
    if (s->kind == DF_SCHED_EULER || s->kind == DF_SCHED_EULER_A) {
        const float sigma = s->sigmas[i];
        const float d = sqrtf(sigma * sigma + 1.0f);
        for (size_t j = 0; j < n; j++) out[j] = x[j] / d;
    } else if (out != x) {
        memmove(out, x, n * sizeof(float));
    }
    return DF_OK;
}

// ---------------------------------------------------------------------------------------------
// steps

static df_status step_ddim(df_sched *s, int i, const float *eps, float *x, size_t n,
                           float *pred_x0) {
    const int t = s->timestep_idx[i];
    const int prev_t = t - s->step_ratio;
    const float a_t = s->alphas_cumprod[t];
    const float a_prev = prev_t >= 0 ? s->alphas_cumprod[prev_t] : s->final_alpha_cumprod;
    const float b_t = 1.0f - a_t;
    const float sa = sqrtf(a_t), sb = sqrtf(b_t);
    const float sa_prev = sqrtf(a_prev);
    const float c_dir = sqrtf((1.0f - a_prev) - 0.0f); // eta = 0: std_dev_t = 0
    const int clip = s->clip_sample;
    const float lo = -s->clip_range, hi = s->clip_range;
    const int v = s->pred == DF_PRED_V;
    for (size_t j = 0; j < n; j++) {
        float x0, e;
        if (v) {
            x0 = sa * x[j] - sb * eps[j];
            e = sa * eps[j] + sb * x[j];
        } else {
            x0 = (x[j] - sb * eps[j]) / sa;
            e = eps[j];
        }
        if (clip) x0 = x0 < lo ? lo : (x0 > hi ? hi : x0);
        if (pred_x0) pred_x0[j] = x0;
        x[j] = sa_prev * x0 + c_dir * e;
    }
    return DF_OK;
}

static df_status step_euler(df_sched *s, int i, const float *eps, float *x, size_t n,
                            float *pred_x0) {
    const float sigma = s->sigmas[i];
    const float sigma_hat = sigma * (0.0f + 1.0f); // gamma = 0 (s_churn 0)
    const float dt = s->sigmas[i + 1] - sigma_hat;
    const int v = s->pred == DF_PRED_V;
    const float s2p1 = sigma * sigma + 1.0f;
    const float cv = -sigma / sqrtf(s2p1);
    for (size_t j = 0; j < n; j++) {
        const float x0 = v ? eps[j] * cv + x[j] / s2p1 : x[j] - sigma_hat * eps[j];
        if (pred_x0) pred_x0[j] = x0;
        const float d = (x[j] - x0) / sigma_hat;
        x[j] = x[j] + d * dt;
    }
    return DF_OK;
}

static df_status step_euler_a(df_sched *s, int i, const float *eps, float *x, size_t n,
                              const float *noise, float *pred_x0) {
    const float sigma = s->sigmas[i];
    const float sf = s->sigmas[i], st = s->sigmas[i + 1];
    const float st2 = st * st, sf2 = sf * sf;
    const float sigma_up = sqrtf((st2 * (sf2 - st2)) / sf2);
    const float sigma_down = sqrtf(st2 - sigma_up * sigma_up);
    const float dt = sigma_down - sigma;
    const int v = s->pred == DF_PRED_V;
    const float s2p1 = sigma * sigma + 1.0f;
    const float cv = -sigma / sqrtf(s2p1);
    for (size_t j = 0; j < n; j++) {
        const float x0 = v ? eps[j] * cv + x[j] / s2p1 : x[j] - sigma * eps[j];
        if (pred_x0) pred_x0[j] = x0;
        const float d = (x[j] - x0) / sigma;
        const float prev = x[j] + d * dt;
        x[j] = prev + noise[j] * sigma_up;
    }
    return DF_OK;
}

// alpha_t = 1 / (sigma^2 + 1)^0.5 (torch: reciprocal * 1), sigma_t = sigma * alpha_t
static void dpm_alpha_sigma(float sigma, float *alpha, float *sig) {
    const float a = 1.0f / sqrtf(sigma * sigma + 1.0f);
    *alpha = a;
    *sig = sigma * a;
}

static df_status step_dpm(df_sched *s, int i, const float *eps, float *x, size_t n,
                          float *pred_x0) {
    const int N = s->n_steps;
    const int lower_order_final =
        (i == N - 1) && (s->euler_at_final || (s->lower_order_final && N < 15));
    // convert_model_output
    float alpha_s0, sigma_s0;
    dpm_alpha_sigma(s->sigmas[i], &alpha_s0, &sigma_s0);
    float *m0 = s->x0_cur;
    const float *m1 = s->x0_prev;
    const int pp = s->algo == DF_DPM_ALGO_DPMSOLVER_PP;
    const int v = s->pred == DF_PRED_V;
    for (size_t j = 0; j < n; j++) {
        if (pp) m0[j] = v ? alpha_s0 * x[j] - sigma_s0 * eps[j]
                          : (x[j] - sigma_s0 * eps[j]) / alpha_s0;
        else m0[j] = v ? alpha_s0 * eps[j] + sigma_s0 * x[j] : eps[j]; // epsilon prediction
    }
    if (pred_x0) {
        if (pp) memcpy(pred_x0, m0, n * sizeof(float));
        else
            for (size_t j = 0; j < n; j++)
                pred_x0[j] = v ? alpha_s0 * x[j] - sigma_s0 * eps[j]
                               : (x[j] - sigma_s0 * eps[j]) / alpha_s0;
    }

    float alpha_t, sigma_t;
    dpm_alpha_sigma(s->sigmas[i + 1], &alpha_t, &sigma_t);
    const float lambda_t = logf(alpha_t) - logf(sigma_t);
    const float lambda_s0 = logf(alpha_s0) - logf(sigma_s0);
    const float h = lambda_t - lambda_s0;
    if (s->solver_order == 1 || s->lower_order_nums < 1 || lower_order_final) {
        if (pp) {
            const float c1 = sigma_t / sigma_s0;
            const float c2 = alpha_t * (expf(-h) - 1.0f);
            for (size_t j = 0; j < n; j++) x[j] = c1 * x[j] - c2 * m0[j];
        } else {
            const float c1 = alpha_t / alpha_s0;
            const float c2 = sigma_t * (expf(h) - 1.0f);
            for (size_t j = 0; j < n; j++) x[j] = c1 * x[j] - c2 * m0[j];
        }
    } else {
        float alpha_s1, sigma_s1;
        dpm_alpha_sigma(s->sigmas[i - 1], &alpha_s1, &sigma_s1);
        const float lambda_s1 = logf(alpha_s1) - logf(sigma_s1);
        const float h0 = lambda_s0 - lambda_s1;
        const float r0 = h0 / h;
        const float inv_r0 = 1.0f / r0;
        const int mid = s->solver_type == DF_DPM_SOLVER_MIDPOINT;
        if (pp) {
            const float c1 = sigma_t / sigma_s0;
            const float em1 = expf(-h) - 1.0f;
            const float c2 = alpha_t * em1;
            const float c3 = mid ? 0.5f * c2 : alpha_t * (em1 / h + 1.0f);
            for (size_t j = 0; j < n; j++) {
                const float d1 = inv_r0 * (m0[j] - m1[j]);
                const float a = c1 * x[j] - c2 * m0[j];
                x[j] = mid ? a - c3 * d1 : a + c3 * d1;
            }
        } else {
            const float c1 = alpha_t / alpha_s0;
            const float em1 = expf(h) - 1.0f;
            const float c2 = sigma_t * em1;
            const float c3 = mid ? 0.5f * c2 : sigma_t * (em1 / h - 1.0f);
            for (size_t j = 0; j < n; j++) {
                const float d1 = inv_r0 * (m0[j] - m1[j]);
                const float a = c1 * x[j] - c2 * m0[j];
                x[j] = a - c3 * d1;
            }
        }
    }
    if (s->lower_order_nums < s->solver_order) s->lower_order_nums++;
    s->x0_prev = m0;
    s->x0_cur = (float *)m1;
    return DF_OK;
}

static df_status step_pndm(df_sched *s, int i, const float *eps, float *x, size_t n) {
    int t = s->timestep_idx[i];
    int prev_t = t - s->step_ratio;
    if (s->counter != 1) {
        // ets = ets[-3:] + [eps]
        if (s->n_ets == PNDM_MAX_ETS) {
            float *old = s->ets[0];
            for (int k = 0; k < PNDM_MAX_ETS - 1; k++) s->ets[k] = s->ets[k + 1];
            s->ets[PNDM_MAX_ETS - 1] = old;
            s->n_ets--;
        }
        memcpy(s->ets[s->n_ets++], eps, n * sizeof(float));
    } else {
        prev_t = t;
        t = t + s->step_ratio;
    }
    DF_FAIL_IF(t < 0 || t >= s->T, DF_ERR_INTERNAL, "pndm: timestep %d", t);
    const float a_t = s->alphas_cumprod[t];
    const float a_prev = prev_t >= 0 ? s->alphas_cumprod[prev_t] : s->final_alpha_cumprod;
    const float b_t = 1.0f - a_t;
    const float b_prev = 1.0f - a_prev;
    const float sample_coeff = sqrtf(a_prev / a_t);
    const float denom = a_t * sqrtf(b_prev) + sqrtf((a_t * b_t) * a_prev);
    const float dcoef = a_prev - a_t;
    const float sa = sqrtf(a_t), sb = sqrtf(b_t);
    const int v = s->pred == DF_PRED_V;
    const int ne = s->n_ets;
    const float *e1 = s->ets[ne - 1];
    const float *e2 = ne >= 2 ? s->ets[ne - 2] : NULL;
    const float *e3 = ne >= 3 ? s->ets[ne - 3] : NULL;
    const float *e4 = ne >= 4 ? s->ets[ne - 4] : NULL;
    const float k24 = (float)(1.0 / 24.0);
    const int first = ne == 1 && s->counter == 0;
    const int second = ne == 1 && s->counter == 1;
    for (size_t j = 0; j < n; j++) {
        float mo, smp = x[j];
        if (first) {
            mo = eps[j];
            s->cur_sample[j] = x[j];
        } else if (second) {
            mo = (eps[j] + e1[j]) / 2.0f;
            smp = s->cur_sample[j];
        } else if (ne == 2) {
            mo = (3.0f * e1[j] - e2[j]) / 2.0f;
        } else if (ne == 3) {
            mo = ((23.0f * e1[j] - 16.0f * e2[j]) + 5.0f * e3[j]) / 12.0f;
        } else {
            mo = k24 * (((55.0f * e1[j] - 59.0f * e2[j]) + 37.0f * e3[j]) - 9.0f * e4[j]);
        }
        if (v) mo = sa * mo + sb * smp;
        x[j] = sample_coeff * smp - (dcoef * mo) / denom;
    }
    s->counter++;
    return DF_OK;
}

df_status df_sched_step(df_sched *s, int i, const float *eps, float *x, size_t n,
                        const float *noise, float *pred_x0) {
    DF_FAIL_IF(!s || !eps || !x, DF_ERR_ARG, "NULL argument");
    const char *kn = df_sched_kind_name(s->kind);
    DF_FAIL_IF(i < 0 || i >= s->n_calls, DF_ERR_ARG, "%s: call index %d outside [0, %d)", kn, i,
               s->n_calls);
    DF_FAIL_IF(s->kind == DF_SCHED_EULER_A && !noise, DF_ERR_ARG,
               "euler_a: step %d needs noise (df_sched_randn)", i);
    const int stateful = s->kind == DF_SCHED_PNDM || s->kind == DF_SCHED_DPMPP_2M;
    if (stateful) {
        DF_FAIL_IF(i != s->next_call, DF_ERR_ARG,
                   "%s: steps must be taken in order: expected call %d, got %d "
                   "(df_sched_reset to restart)",
                   kn, s->next_call, i);
        if (!s->state) DF_TRY(alloc_state(s, n));
        DF_FAIL_IF(n != s->numel, DF_ERR_SHAPE, "%s: latent has %zu elements, expected %zu", kn,
                   n, s->numel);
    }
    df_status st;
    switch (s->kind) {
    case DF_SCHED_DDIM: st = step_ddim(s, i, eps, x, n, pred_x0); break;
    case DF_SCHED_EULER: st = step_euler(s, i, eps, x, n, pred_x0); break;
    case DF_SCHED_EULER_A: st = step_euler_a(s, i, eps, x, n, noise, pred_x0); break;
    case DF_SCHED_DPMPP_2M: st = step_dpm(s, i, eps, x, n, pred_x0); break;
    case DF_SCHED_PNDM: st = step_pndm(s, i, eps, x, n); break;
    default: st = DF_ERROR(DF_ERR_INTERNAL, "kind %d", (int)s->kind); break;
    }
    if (st == DF_OK) s->next_call = i + 1;
    return st;
}

// ---------------------------------------------------------------------------------------------
// noise

df_status df_sched_randn(df_rng *rng, int b, int c, int h, int w, int nhwc, float *out) {
    DF_FAIL_IF(!rng || !out, DF_ERR_ARG, "NULL argument");
    DF_FAIL_IF(b <= 0 || c <= 0 || h <= 0 || w <= 0, DF_ERR_ARG,
               "invalid latent shape [%d, %d, %d, %d]", b, c, h, w);
    size_t n;
    DF_FAIL_IF(!df_i_mul_size((size_t)b * (size_t)c, (size_t)h * (size_t)w, &n), DF_ERR_ARG,
               "latent shape too large");
    if (!nhwc || c == 1) {
        df_rng_randn(rng, out, n);
        return DF_OK;
    }
    float *tmp = df_malloc(n * sizeof(float)); // [b][c][h*w]
    DF_FAIL_IF(!tmp, DF_ERR_NOMEM, "noise buffer (%zu floats)", n);
    df_rng_randn(rng, tmp, n);
    const size_t hw = (size_t)h * (size_t)w;
    for (size_t bi = 0; bi < (size_t)b; bi++)
        for (size_t ci = 0; ci < (size_t)c; ci++)
            for (size_t p = 0; p < hw; p++)
                out[(bi * hw + p) * (size_t)c + ci] = tmp[(bi * (size_t)c + ci) * hw + p];
    df_free(tmp);
    return DF_OK;
}
