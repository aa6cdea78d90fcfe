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
// Trailing dimensions of size 1 are ignored in the comparison (a stored [C,C,1,1] 1x1 conv matches
// an expected Linear [C,C] and vice versa). ndim < 0 skips the shape check. The dtype must be
// F32, F16 or BF16 (DF_ERR_SHAPE otherwise).
df_status df_weights_get(df_weights *w, const char *name, int ndim, const int64_t *shape,
                         const df_st_tensor **out);
// Tensors never fetched by df_weights_get (extra tensors); returns the count and, if msg is not
// NULL, writes up to cap bytes listing the first few names.
int df_weights_unused(const df_weights *w, const char *prefix, char *msg, size_t cap);
const char *df_weights_path(const df_weights *w);
// Drops the resident pages of the table's file-mapped tensors (df_st_release_pages; owned data
// and memory outside the mapping are untouched). The views stay valid: a later use faults the
// pages back in. Returns the bytes advised.
size_t df_weights_release_pages(const df_weights *w);
// Iteration over all entries (diffusers names), in insertion order; 0 <= i < count.
int df_weights_count(const df_weights *w);
const df_st_tensor *df_weights_at(const df_weights *w, int i);

// A component of a diffusers folder: DIR/COMPONENT/<file> with <file> the first that exists of
// diffusion_pytorch_model.safetensors, diffusion_pytorch_model.fp16.safetensors,
// model.safetensors, model.fp16.safetensors. DF_ERR_IO naming the folder if none exists.
df_status df_weights_open_dir(const char *dir, const char *component, df_weights **out);

// ---------------------------------------------------------------------------------------------
// Building a table (internal: used by the single-file loader and by model code/tests).
// Entries are views: a name plus a df_st_tensor whose data points into a mapping (borrowed) or
// into memory the table owns. Names are copied. Duplicate names are DF_ERR_FORMAT.
//
// df_weights_from_single() fills a table by asking the component's df_i_ldm_map_* for every
// tensor of the file (1:1 renames). Tensors that are not 1:1 renames are handled in weights.c
// before the mapper is asked (so the mappers never see them):
//   - OpenCLIP `...resblocks.i.attn.in_proj_weight` [3C][C] / `in_proj_bias` [3C] (text_encoder_2)
//     become three row-slice aliases text_model.encoder.layers.i.self_attn.{q,k,v}_proj.{weight,
//     bias} (df_i_weights_add_alias, no copy);
//   - OpenCLIP `text_projection` [D][P] becomes `text_projection.weight` [P][D], transposed into
//     memory the table owns (df_i_weights_add_owned).
// `model_ema.*` tensors are ignored.

// An empty table; `label` names it in error messages (e.g. the file path and component).
df_status df_i_weights_create(const char *label, df_weights **out);
// Adds NAME as a view of the whole tensor src (shape and dtype as stored).
df_status df_i_weights_add(df_weights *w, const char *name, const df_st_tensor *src);
// Adds NAME as a contiguous view of src: `ndim`/`shape` give the view's shape (same dtype), the
// data starts byte_offset bytes into src->data. The view must lie inside src.
df_status df_i_weights_add_view(df_weights *w, const char *name, const df_st_tensor *src,
                                size_t byte_offset, int ndim, const int64_t *shape);
// Adds NAME as rows [row_begin, row_begin + rows) of src (first dimension), e.g. the q/k/v
// thirds of a fused in_proj_weight [3C][C] or in_proj_bias [3C].
df_status df_i_weights_add_alias(df_weights *w, const char *name, const df_st_tensor *src,
                                 size_t row_begin, size_t rows);
// Adds NAME with data the table takes ownership of (allocated with df_malloc; freed with the
// table, also on failure).
df_status df_i_weights_add_owned(df_weights *w, const char *name, df_dtype dtype, int ndim,
                                 const int64_t *shape, void *data);

// Name mappers for single-file checkpoints: return 1 and write the diffusers name for an LDM
// name of that component, 0 if the name does not belong to it. (unet: model.diffusion_model.*;
// vae: first_stage_model.*; text_encoder: cond_stage_model.transformer.* or
// conditioner.embedders.0.transformer.*; text_encoder_2: conditioner.embedders.1.model.*.)
// The UNet mapper needs the layout (number of resnets per block, which blocks have
// attentions): `layers` = df_i_ldm_unet_layers(file), derived from the names in the file itself.
int df_i_ldm_unet_layers(const df_st_file *f);
int df_i_ldm_map_unet(int layers, const char *ldm, char *out, size_t cap);
int df_i_ldm_map_vae(const char *ldm, char *out, size_t cap);
int df_i_ldm_map_clip(const char *ldm, int which, char *out, size_t cap);

#endif // DF_MODEL_WEIGHTS_H
