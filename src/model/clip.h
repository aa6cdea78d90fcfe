// CLIP text encoders (transformers CLIPTextModel / CLIPTextModelWithProjection) and the prompt
// encoding of the SD 1.x and SDXL pipelines (spec sdxl.md §5.1, §5.2).
//
// Forward (T <= max_positions tokens, T = 77 in the pipelines):
//   x = token_embedding[ids] + position_embedding[0..T-1]                    [T][D]
//   per layer (pre-LN): x += out_proj(causal_MHA(layer_norm1(x)))            heads of HS = D/NH
//                       x += fc2(act(fc1(layer_norm2(x))))                   act: quick_gelu | gelu
//   hidden_states[0] = embeddings, hidden_states[k] = output of layer k (no final LN)
//   last_hidden_state = final_layer_norm(hidden_states[N])
//   pooled = last_hidden_state[argmax(ids)] (the first maximal id: the first EOS 49407 with the
//            real vocabulary; the tiny fixtures' config eos id 2 is a legacy placeholder, and
//            transformers 4.36 uses argmax then)
//   text_embeds = text_projection(pooled) (no bias; CLIPTextModelWithProjection only)
// The attention is causal (query i sees keys j <= i) with no padding mask.
//
// Weights: diffusers/transformers names, with or without the leading "text_model." (transformers
// >= 5.6 drops it). Stored F32/F16/BF16; each layer's weights are converted to an f32 scratch when
// the layer runs (resident memory = the mapping + one layer), embedding rows are gathered.
// Activations are f32, tokens row-major [T][D].
#ifndef DF_MODEL_CLIP_H
#define DF_MODEL_CLIP_H

#include "core/core.h"
#include "model/weights.h"

#include <stdint.h>

#define DF_CLIP_TOKENS 77 // sequence length of every pipeline prompt (tokenizer max_length)

typedef enum df_clip_act { DF_CLIP_ACT_QUICK_GELU = 0, DF_CLIP_ACT_GELU = 1 } df_clip_act;

typedef struct df_clip_config {
    int hidden;         // D (hidden_size)
    int intermediate;   // F (intermediate_size)
    int layers;         // N (num_hidden_layers)
    int heads;          // NH (num_attention_heads); D % NH == 0
    int max_positions;  // max_position_embeddings (77)
    int vocab;          // vocab_size (49408)
    int projection_dim; // P (projection_dim); used only when has_projection
    int has_projection; // 1: CLIPTextModelWithProjection (text_projection.weight [P][D]);
                        // 0: CLIPTextModel; -1: decide from the weights (present or not)
    df_clip_act act;    // hidden_act
    float eps;          // layer_norm_eps
} df_clip_config;

// Reads a transformers CLIPTextConfig config.json. has_projection comes from "architectures"
// (CLIPTextModelWithProjection -> 1, CLIPTextModel -> 0, absent -> -1). Unknown hidden_act is
// DF_ERR_UNSUPPORTED; missing required fields DF_ERR_FORMAT naming the file and field.
df_status df_clip_config_load(const char *path, df_clip_config *cfg);
// Same from a JSON string; `label` names it in error messages.
df_status df_clip_config_parse(const char *json, const char *label, df_clip_config *cfg);
// Presets for the real models (single-file checkpoints carry no config): OpenAI CLIP ViT-L/14
// text (SD 1.x text_encoder, SDXL text_encoder) and OpenCLIP ViT-bigG/14 text (SDXL
// text_encoder_2, with projection).
void df_clip_config_clip_l(df_clip_config *cfg);
void df_clip_config_bigg(df_clip_config *cfg);

typedef struct df_clip df_clip;

// Binds a model to a weights table (borrowed: it must outlive the model). Every tensor is looked
// up and shape-checked here: a missing tensor is DF_ERR_FORMAT naming it.
df_status df_clip_create(const df_clip_config *cfg, df_weights *w, df_clip **out);
// Loads MODEL_DIR/COMPONENT/config.json and the component's weights (df_weights_open_dir); the
// model owns the weights.
df_status df_clip_load(const char *model_dir, const char *component, df_clip **out);
void df_clip_destroy(df_clip *m); // accepts NULL
// Drops the resident pages of the mmapped weights (df_weights_release_pages); the encoder stays
// usable (pages fault back in). Returns the bytes advised.
size_t df_clip_release_weight_pages(df_clip *m);
const df_clip_config *df_clip_get_config(const df_clip *m);

// What one forward pass writes; every pointer may be NULL (not wanted). The pass stops after
// the last layer any requested output needs.
typedef struct df_clip_outputs {
    float *hidden_states;     // [N+1][T][D] all hidden states
    float *hidden;            // [T][D] hidden_states[hidden_index]
    int hidden_index;         // Python-style: -1 = last layer's output, -2 = penultimate, ...
    int hidden_final_ln;      // apply final_layer_norm to `hidden` (SD 1.x clip_skip)
    float *last_hidden_state; // [T][D]
    float *pooled;            // [D] (pooler_output)
    float *text_embeds;       // [P] (needs the projection)
} df_clip_outputs;

// One sequence of T token ids (0 <= id < vocab; 1 <= T <= max_positions).
df_status df_clip_forward(df_clip *m, const int32_t *ids, int T, const df_clip_outputs *o);

// Index of the pooled token: the first position of the maximal id (torch argmax).
int df_clip_pool_index(const int32_t *ids, int T);

// Causal multi-head self-attention of T tokens (T small: the 77-token text sequence):
// out[i] = sum_{j<=i} softmax_j(scale * q_i . k_j) v_j per head; heads are contiguous HS-channel
// blocks of the NH*HS-wide rows (q, k, v, out all [T][NH*HS]). scratch: [T][T] floats.
// Fast version: two cblas_sgemm per head + a masked row softmax; _ref: plain loops in double.
void df_clip_causal_attention(float *out, const float *q, const float *k, const float *v, int T,
                              int NH, int HS, float scale, float *scratch);
void df_clip_causal_attention_ref(float *out, const float *q, const float *k, const float *v,
                                  int T, int NH, int HS, float scale, float *scratch);

// ---------------------------------------------------------------------------------------------
// Prompt encoding (token ids come from the tokenizer, padded/truncated to DF_CLIP_TOKENS).

// SDXL (StableDiffusionXLPipeline.encode_prompt, diffusers 0.24) for one prompt:
//   embeds [77][D1+D2] = concat(te1.hidden_states[-(s+2)], te2.hidden_states[-(s+2)]) (te1 first),
//   pooled [P2]        = te2 text_embeds (always from the last layer),
// with s = clip_skip (0 = None). te1 may be NULL (refiner: te2 only, D1 = 0).
// ids1 = tokenizer(prompt), ids2 = tokenizer_2(prompt_2, defaulting to prompt).
df_status df_sdxl_encode(df_clip *te1, df_clip *te2, const int32_t *ids1, const int32_t *ids2,
                         int clip_skip, float *embeds, float *pooled);

// SDXL with classifier-free guidance, the negative branch as diffusers 0.24 builds it:
//   neg_ids1/neg_ids2 == NULL means negative_prompt None: with force_zeros_for_empty_prompt the
//   negative embeds and pooled are all zeros (encoders not run); without it the pipeline
//   encodes "" -> pass the tokenized "" (NULL is then DF_ERR_ARG).
//   Otherwise neg_ids1 = tokenizer(negative_prompt), neg_ids2 = tokenizer_2(negative_prompt_2,
//   defaulting to negative_prompt); "" is encoded like any text.
//   clip_skip applies to the positive prompt only (the negative branch always uses [-2]).
// neg_embeds / neg_pooled may be NULL (no CFG); then the negative ids are ignored.
df_status df_sdxl_encode_prompt(df_clip *te1, df_clip *te2, const int32_t *ids1,
                                const int32_t *ids2, const int32_t *neg_ids1,
                                const int32_t *neg_ids2, int force_zeros_for_empty_prompt,
                                int clip_skip, float *embeds, float *pooled, float *neg_embeds,
                                float *neg_pooled);

// SD 1.x (StableDiffusionPipeline.encode_prompt): embeds [77][D] = last_hidden_state, or with
// clip_skip s > 0 final_layer_norm(hidden_states[-(s+1)]). The negative prompt (None is encoded
// as "": pass the tokenized "") ignores clip_skip. neg_embeds NULL = no CFG.
df_status df_sd15_encode_prompt(df_clip *te, const int32_t *ids, const int32_t *neg_ids,
                                int clip_skip, float *embeds, float *neg_embeds);

#endif // DF_MODEL_CLIP_H
