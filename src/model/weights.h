// Model weights: a table from diffusers tensor names to mmapped safetensors tensors.
//
// Names mirror the diffusers checkpoint (e.g. "down_blocks.1.resnets.0.conv1.weight"), whatever
// the file layout: a diffusers component file is used as is; an original single-file (LDM/SGM)
// checkpoint is mapped once at load time by df_i_ldm_map_* (no renames anywhere else).
// Weights stay in their stored dtype (F32/F16/BF16) in the mapping; models convert them to f32
// scratch when a layer runs (df_convert_to_f32 / df_conv_weight_pack).
#ifndef DF_MODEL_WEIGHTS_H
#define DF_MODEL_WEIGHTS_H

#include "io/safetensors.h"

typedef struct df_weights df_weights;

// One diffusers component file (e.g. unet/diffusion_pytorch_model.safetensors). The weights
// object owns the opened file.
df_status df_weights_open(const char *path, df_weights **out);
// Component `component` ("unet", "vae", "text_encoder", "text_encoder_2") of a single-file
// checkpoint, names mapped to diffusers names. `f` is borrowed: it must outlive the weights.
// DF_ERR_FORMAT if the checkpoint has no tensors for that component.
df_status df_weights_from_single(const df_st_file *f, const char *component, df_weights **out);
void df_weights_destroy(df_weights *w); // accepts NULL

// NULL if absent (no error recorded).
const df_st_tensor *df_weights_find(const df_weights *w, const char *name);
// Looks up NAME and checks its shape (ndim dims); DF_ERR_FORMAT "missing tensor 'X' in FILE" or
// DF_ERR_SHAPE "tensor 'X' has shape [..], expected [..]". Marks the tensor used.
df_status df_weights_get(df_weights *w, const char *name, int ndim, const int64_t *shape,
                         const df_st_tensor **out);
// Tensors never fetched by df_weights_get (extra tensors); returns the count and, if msg is not
// NULL, writes up to cap bytes listing the first few names.
int df_weights_unused(const df_weights *w, const char *prefix, char *msg, size_t cap);
const char *df_weights_path(const df_weights *w);

// Name mappers for single-file checkpoints: return 1 and write the diffusers name for an LDM
// name of that component, 0 if the name does not belong to it. (unet: model.diffusion_model.*;
// vae: first_stage_model.*; text_encoder: cond_stage_model.transformer.* or
// conditioner.embedders.0.transformer.*; text_encoder_2: conditioner.embedders.1.model.*.)
// The UNet mapper needs the layout (number of resnets per block, which blocks have
// attentions), which it derives from the names in the file itself.
int df_i_ldm_map_unet(const df_st_file *f, const char *ldm, char *out, size_t cap);
int df_i_ldm_map_vae(const char *ldm, char *out, size_t cap);
int df_i_ldm_map_clip(const char *ldm, int which, char *out, size_t cap);

#endif // DF_MODEL_WEIGHTS_H
