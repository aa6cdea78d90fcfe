// Internal pieces of the text-to-image pipeline (include/distrifuse/pipeline.h): the model
// bundle and the UNet-evaluation hook the denoising loop calls once per step, so the distributed
// runtime can replace the single-rank UNet forward without touching the loop.
#ifndef DF_PIPELINE_PIPELINE_IMPL_H
#define DF_PIPELINE_PIPELINE_IMPL_H

#include "distrifuse/pipeline.h"

#include "core/core.h"
#include "io/safetensors.h"
#include "model/clip.h"
#include "model/unet.h"
#include "model/vae.h"
#include "model/weights.h"
#include "sched/sched.h"
#include "text/tokenizer.h"

struct df_model {
    df_arch arch;
    char path[4096];
    char name[256];
    int single_file;            // 1: one LDM/SGM checkpoint
    df_st_file *single;         // that checkpoint (the component tables point into it)
    df_unet *unet;
    df_vae *vae;
    df_clip *te1;               // CLIP-L (SD1 / SDXL text_encoder)
    df_clip *te2;               // SDXL text_encoder_2 (bigG, with projection); NULL for SD1
    df_weights *w_te1, *w_te2, *w_vae; // owned weight tables of single-file components
    df_tokenizer *tok1, *tok2;
    df_sched_config sched_cfg;  // scheduler_config.json (class-default semantics)
    df_sched_kind sched_kind;   // the config's class (the default sampler)
    int force_zeros;            // SDXL force_zeros_for_empty_prompt
    int sample_size;            // unet sample_size (latent pixels): default image = x 8
    df_load_params lp;          // load options (data_dir valid only during df_model_load_ex)
};

// Text conditioning of one generation, for the UNet (CFG order: image 0 uncond, 1 cond).
typedef struct df_cond {
    int n_img;                // 1 (no CFG: cond only) or 2 ([uncond, cond])
    int T, D;                 // tokens (77) and cross_attention_dim
    const float *enc;         // [n_img][T][D] encoder_hidden_states
    int P;                    // pooled width (SDXL text_embeds_dim), 0 for SD1
    const float *text_embeds; // [n_img][P] SDXL pooled, NULL for SD1
    const float *time_ids;    // [n_img][6] SDXL add_time_ids, NULL for SD1
} df_cond;

// The UNet evaluation of the denoising loop. The loop calls begin() once per image, eval() once
// per model call (step), end() at the end (also after a failure). The single-rank version is
// df_i_denoiser_single(); the MPI runtime provides another with the same contract, every rank
// running the same loop (scheduler included) with identical inputs.
typedef struct df_denoiser {
    void *self;
    int root; // 1: this process reports progress, decodes and writes the outputs
    // Prepares n_img = cond->n_img images of an h x w latent and the text conditioning.
    df_status (*begin)(void *self, df_unet *unet, const df_cond *cond, int h, int w);
    // x [n_img][h][w][4] (NHWC, the scheduler-scaled model input of every CFG half)
    // -> eps [n_img][h][w][4]; call = 0-based model call index, t = timestep.
    df_status (*eval)(void *self, int call, const float *x, float t, float *eps);
    void (*end)(void *self); // may be NULL
    // Parallel VAE decode (NULL: the root decodes alone). When set and params.parallel_vae,
    // every process calls it: z [h][w][C] scaled latent (identical everywhere), img
    // [f*h][f*w][3] on the root (NULL elsewhere, or on the root when its buffer failed); fills
    // timings->vae_halo_s / vae_gather_s and *tiled.
    df_status (*decode)(void *self, df_vae *vae, const float *z, int h, int w,
                        const df_vae_decode_opts *opts, float *img, df_timings *timings,
                        int *tiled);
} df_denoiser;

// The single-rank denoiser (plain df_unet_forward on the whole latent). `state` is caller
// storage that must outlive the denoiser's use.
typedef struct df_denoiser_single_state {
    df_unet *unet;
    int n_img, h, w;
    float t[2];
} df_denoiser_single_state;
void df_i_denoiser_single(df_denoiser *d, df_denoiser_single_state *state);

// df_generate with an explicit denoiser. Non-root processes skip the VAE, the callbacks and
// every file output (image stays empty).
df_status df_i_generate(df_model *m, const df_gen_params *p, const df_denoiser *den,
                        df_image *image, df_gen_info *info);

// The --init-latent file `path` (tensor "latents", else the only tensor, F32/F16/BF16 shape
// [1, c, h, w]) into nchw [c*h*w]. DF_ERR_IO / DF_ERR_FORMAT / DF_ERR_SHAPE naming the file.
df_status df_i_read_init_latent(const char *path, int c, int h, int w, float *nchw);

#endif // DF_PIPELINE_PIPELINE_IMPL_H
