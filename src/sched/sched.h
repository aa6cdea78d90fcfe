// Diffusion schedulers with diffusers 0.24 numerics, and classifier-free guidance.
//
// Schedulers are pure math on latents: a latent is a flat f32 array of n elements (the whole
// batch); every operation is elementwise, so the layout (NCHW / NHWC) does not matter, except
// for the random noise of Euler ancestral (drawn by the caller in torch's NCHW order, see
// df_sched_randn) and the per-sample std of guidance_rescale.
//
// Supported (epsilon and v_prediction):
//   ddim     DDIMScheduler (eta 0; clip_sample / set_alpha_to_one / steps_offset honoured)
//   euler    EulerDiscreteScheduler (s_churn 0, linear sigma interpolation)
//   euler_a  EulerAncestralDiscreteScheduler (needs noise every step)
//   dpm++2m  DPMSolverMultistepScheduler (dpmsolver++ or dpmsolver, order 1 or 2, midpoint or
//            heun, lower_order_final / euler_at_final as in 0.24: the sigma list ends with
//            sigma_train[0], the last step is first order only when n < 15)
//   pndm     PNDMScheduler with skip_prk_steps (PLMS; n steps -> n + 1 model calls, the second
//            timestep repeated)
// Timestep spacing leading / trailing / linspace as each class defines it.
//
// Typical loop (the integrator's denoising loop):
//     df_sched_create(kind, &cfg, steps, numel, &s);
//     df_sched_randn(&rng, b, c, h, w, nhwc, x);             // torch.randn(shape, generator)
//     df_sched_init_latents(s, x, numel);                     // x *= init_noise_sigma
//     for (int i = 0; i < df_sched_n_calls(s); i++) {
//         df_sched_scale_model_input(s, i, x, xin, numel);
//         unet(xin, df_sched_timestep(s, i)) -> eps_u, eps_c;
//         df_cfg_combine(eps, eps_u, eps_c, b, numel / b, g, guidance_rescale);
//         if (df_sched_needs_noise(s)) df_sched_randn(&rng, b, c, h, w, nhwc, noise);
//         df_sched_step(s, i, eps, x, numel, noise, NULL);
//     }
#ifndef DF_SCHED_SCHED_H
#define DF_SCHED_SCHED_H

#include "core/rng.h"
#include "distrifuse/status.h"

#include <stddef.h>

typedef enum df_sched_kind {
    DF_SCHED_NONE = 0, // unknown / not set (df_sched_config_load_json with an unknown class)
    DF_SCHED_DDIM,
    DF_SCHED_EULER,
    DF_SCHED_EULER_A,
    DF_SCHED_DPMPP_2M,
    DF_SCHED_PNDM,
    DF_SCHED_KIND_COUNT
} df_sched_kind;

// "ddim", "euler", "euler_a", "dpm++2m", "pndm" (also accepts "euler_ancestral", "dpmpp2m",
// "dpm++", "plms" and the diffusers class names). DF_ERR_ARG naming the valid names otherwise.
df_status df_sched_kind_parse(const char *name, df_sched_kind *out);
const char *df_sched_kind_name(df_sched_kind k);           // "ddim", ...; "none" for NONE
// diffusers `_class_name` ("DDIMScheduler", ...) -> kind; DF_SCHED_NONE if not one of ours.
df_sched_kind df_sched_kind_from_class(const char *class_name);

// ---------------------------------------------------------------------------------------------
// Configuration (scheduler_config.json). Every field has a "class default" value (0 / -1 / NAN
// as noted): like diffusers' from_config, a key absent from the JSON takes the default of the
// scheduler class actually created, e.g. DDIM built from the SDXL Euler config keeps the
// config's set_alpha_to_one=false but DPM's own solver_order=2.
typedef enum df_beta_schedule {
    DF_BETA_DEFAULT = 0, // class default: linear
    DF_BETA_LINEAR,
    DF_BETA_SCALED_LINEAR,
    DF_BETA_SQUAREDCOS_CAP_V2,
} df_beta_schedule;

typedef enum df_timestep_spacing {
    DF_SPACING_DEFAULT = 0, // class default: leading for DDIM/PNDM, linspace for Euler/DPM
    DF_SPACING_LEADING,
    DF_SPACING_TRAILING,
    DF_SPACING_LINSPACE,
} df_timestep_spacing;

typedef enum df_prediction_type {
    DF_PRED_DEFAULT = 0, // epsilon
    DF_PRED_EPSILON,
    DF_PRED_V,           // v_prediction
    DF_PRED_SAMPLE,      // rejected (DF_ERR_UNSUPPORTED)
} df_prediction_type;

typedef enum df_dpm_algorithm {
    DF_DPM_ALGO_DEFAULT = 0, // dpmsolver++
    DF_DPM_ALGO_DPMSOLVER_PP,
    DF_DPM_ALGO_DPMSOLVER,
} df_dpm_algorithm;

typedef enum df_dpm_solver_type {
    DF_DPM_SOLVER_DEFAULT = 0, // midpoint
    DF_DPM_SOLVER_MIDPOINT,
    DF_DPM_SOLVER_HEUN,
} df_dpm_solver_type;

typedef struct df_sched_config {
    int num_train_timesteps;        // 0: 1000
    double beta_start, beta_end;    // NAN: 0.0001, 0.02
    df_beta_schedule beta_schedule;
    df_prediction_type prediction_type;
    df_timestep_spacing timestep_spacing;
    int steps_offset;               // -1: 0
    int set_alpha_to_one;           // -1: DDIM 1, PNDM 0 (final alpha_bar = 1 or alpha_bar[0])
    int clip_sample;                // -1: DDIM 1 (others ignore it)
    double clip_sample_range;       // NAN: 1.0
    int skip_prk_steps;             // -1: 0 (PNDM requires 1: PRK steps are not implemented)
    int solver_order;               // 0: 2 (DPM: 1 or 2)
    df_dpm_algorithm algorithm_type;
    df_dpm_solver_type solver_type;
    int lower_order_final;          // -1: 1
    int euler_at_final;             // -1: 0
    double lambda_min_clipped;      // NAN: -inf
    // Options we reject when set (DF_ERR_UNSUPPORTED): -1 / 0 = default (off).
    int use_karras_sigmas;
    int thresholding;
    int rescale_betas_zero_snr;
    int has_trained_betas;          // "trained_betas" was a non-null array
    int interpolation_log_linear;   // interpolation_type "log_linear"
    int timestep_type_continuous;   // timestep_type "continuous"
} df_sched_config;

// All fields "class default".
void df_sched_config_init(df_sched_config *cfg);
// The SDXL base scheduler config (scaled_linear 0.00085..0.012, 1000 steps, leading,
// steps_offset 1, set_alpha_to_one false, clip_sample false, epsilon); other fields default.
df_sched_config df_sched_config_default_sdxl(void);
// Reads a diffusers scheduler_config.json. *kind (may be NULL) gets the kind of `_class_name`
// (DF_SCHED_NONE if absent or not one of ours: not an error). Unknown keys are ignored.
// DF_ERR_IO (cannot read), DF_ERR_FORMAT (bad JSON or a key with the wrong type/value; the
// message names the file and key).
df_status df_sched_config_load_json(const char *path, df_sched_config *cfg, df_sched_kind *kind);
// Same from a JSON string (`what` names the source in error messages).
df_status df_sched_config_parse_json(const char *json, const char *what, df_sched_config *cfg,
                                     df_sched_kind *kind);

// ---------------------------------------------------------------------------------------------
// Scheduler object: tables + timesteps for n_steps inference steps + the multistep state
// (PNDM ets history, DPM previous model outputs), allocated at create for `numel` latent
// elements (numel 0: allocated at the first df_sched_step).
typedef struct df_sched df_sched;

// Errors: DF_ERR_ARG (kind NONE/unknown, n_steps <= 0 or > num_train_timesteps, bad config
// values, a timestep outside [0, num_train_timesteps)), DF_ERR_UNSUPPORTED (an option listed
// above), DF_ERR_NOMEM. *out is NULL on failure.
df_status df_sched_create(df_sched_kind kind, const df_sched_config *cfg, int n_steps,
                          size_t numel, df_sched **out);
void df_sched_destroy(df_sched *s); // accepts NULL
// Forgets the multistep state so the same timesteps can be run again (a new image).
void df_sched_reset(df_sched *s);

df_sched_kind df_sched_get_kind(const df_sched *s);
int df_sched_n_steps(const df_sched *s);              // num_inference_steps
int df_sched_n_calls(const df_sched *s);              // model calls: n, PNDM n + 1 (n >= 2)
float df_sched_timestep(const df_sched *s, int i);    // timestep for call i (0 <= i < n_calls)
float df_sched_init_noise_sigma(const df_sched *s);
int df_sched_needs_noise(const df_sched *s);          // 1 for euler_a
// Inference sigmas (Euler / Euler a / DPM: n_steps + 1 values, see the class docs); NULL and
// *count = 0 for DDIM / PNDM. count may be NULL.
const float *df_sched_sigmas(const df_sched *s, int *count);
// Training tables, num_train_timesteps values each.
const float *df_sched_betas(const df_sched *s, int *count);
const float *df_sched_alphas_cumprod(const df_sched *s, int *count);

// x *= init_noise_sigma (pipelines' prepare_latents).
void df_sched_init_latents(const df_sched *s, float *x, size_t n);
// out = scale_model_input(x, t_i) (Euler: x / sqrt(sigma_i^2 + 1); others: copy). out may be x.
df_status df_sched_scale_model_input(const df_sched *s, int i, const float *x, float *out,
                                     size_t n);
// One scheduler step for call i with model output eps: x <- prev_sample (in place).
// noise: n standard normals in x's layout, required iff df_sched_needs_noise (else ignored).
// pred_x0 (may be NULL): the predicted original sample (DDIM, Euler, Euler a; DPM: the x0 its
// convert_model_output computes). PNDM has none: pred_x0 is left untouched.
// Multistep kinds (DPM, PNDM) must be stepped in order i = 0, 1, ... (DF_ERR_ARG otherwise);
// n must equal the numel given at create (or at the first step).
df_status df_sched_step(df_sched *s, int i, const float *eps, float *x, size_t n,
                        const float *noise, float *pred_x0);

// torch.randn((b, c, h, w), generator) continuing rng's stream, written in NCHW order, or
// transposed to NHWC when nhwc != 0. The initial latents and Euler-a's per-step noise.
df_status df_sched_randn(df_rng *rng, int b, int c, int h, int w, int nhwc, float *out);

// ---------------------------------------------------------------------------------------------
// Classifier-free guidance (diffusers pipelines, uncond first):
//   out = eps_u + g * (eps_c - eps_u)
// and, when guidance_rescale > 0, rescale_noise_cfg per sample (std over all per_sample
// elements of one sample, unbiased, as torch.std):
//   out = phi * out * (std(eps_c) / std(out)) + (1 - phi) * out.
// eps_u / eps_c / out: [batch][per_sample]; out may alias eps_u or eps_c.
df_status df_cfg_combine(float *out, const float *eps_u, const float *eps_c, size_t batch,
                         size_t per_sample, float guidance, float guidance_rescale);

#endif // DF_SCHED_SCHED_H
