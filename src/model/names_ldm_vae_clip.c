// Single-file (LDM / SGM) name mapping for the VAE and the CLIP text encoders (spec sdxl.md §1.3).
//
// df_i_ldm_map_vae:  first_stage_model.* (or vae.*) -> AutoencoderKL names.
// df_i_ldm_map_clip: which = 0: text_encoder (CLIP-L; cond_stage_model.transformer.* or
//                               conditioner.embedders.0.transformer.*), names are already HF
//                               (text_model.*), the prefix is stripped;
//                    which = 1: text_encoder_2 (OpenCLIP bigG; conditioner.embedders.1.model.*),
//                               OpenCLIP names are renamed to HF CLIPTextModelWithProjection.
// The OpenCLIP tensors that are not 1:1 renames (attn.in_proj_weight / in_proj_bias, split into
// q/k/v, and text_projection, transposed) are handled by weights.c before the mapper is asked; the
// mapper answers 0 for them. Unknown names (position_ids, logit_scale, loss.*, ...) answer 0.
#include "model/weights.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Number of resolution levels of every SD/SDXL VAE (block_out_channels has 4 entries). The LDM
// decoder numbers its up levels in reverse: LDM up.k is diffusers up_blocks.(levels-1-k).
#define DF_LDM_VAE_LEVELS 4

// Writes the formatted name into out; 0 if it does not fit (treated as "not mapped").
static int emit(char *out, size_t cap, const char *fmt, ...) DF_PRINTF(3, 4);
static int emit(char *out, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < cap;
}

static int starts(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

// Parses a non-negative decimal index followed by '.'; advances *s past the dot. -1 on failure.
static int parse_index(const char **s) {
    const char *p = *s;
    if (*p < '0' || *p > '9') return -1;
    long v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p - '0');
        if (v > 100000) return -1;
        p++;
    }
    if (*p != '.') return -1;
    *s = p + 1;
    return (int)v;
}

// Renames inside a resnet block: nin_shortcut -> conv_shortcut; norm1/conv1/norm2/conv2 stay.
static int map_resnet_tail(const char *tail, char *buf, size_t cap) {
    if (starts(tail, "nin_shortcut.")) return emit(buf, cap, "conv_shortcut.%s", tail + 13);
    if (starts(tail, "norm1.") || starts(tail, "norm2.") || starts(tail, "conv1.") ||
        starts(tail, "conv2.") || starts(tail, "conv_shortcut."))
        return emit(buf, cap, "%s", tail);
    return 0;
}

// mid.{block_1,block_2,attn_1}.* -> mid_block.{resnets.0,resnets.1,attentions.0}.*
static int map_mid(const char *part, const char *rest, char *out, size_t cap) {
    char t[256];
    if (starts(rest, "block_1.") || starts(rest, "block_2.")) {
        int idx = rest[6] - '1';
        if (!map_resnet_tail(rest + 8, t, sizeof t)) return 0;
        return emit(out, cap, "%s.mid_block.resnets.%d.%s", part, idx, t);
    }
    if (starts(rest, "attn_1.")) {
        const char *a = rest + 7;
        static const char *const from[] = {"norm.", "q.", "k.", "v.", "proj_out.",
                                           // deprecated diffusers-era names, just in case
                                           "query.", "key.", "value.", "proj_attn."};
        static const char *const to[] = {"group_norm.", "to_q.", "to_k.", "to_v.", "to_out.0.",
                                         "to_q.", "to_k.", "to_v.", "to_out.0."};
        for (size_t i = 0; i < sizeof from / sizeof from[0]; i++)
            if (starts(a, from[i]))
                return emit(out, cap, "%s.mid_block.attentions.0.%s%s", part, to[i],
                            a + strlen(from[i]));
        return 0;
    }
    return 0;
}

int df_i_ldm_map_vae(const char *ldm, char *out, size_t cap) {
    const char *s;
    if (starts(ldm, "first_stage_model.")) s = ldm + 18;
    else if (starts(ldm, "vae.")) s = ldm + 4;
    else return 0;

    if (starts(s, "quant_conv.") || starts(s, "post_quant_conv.")) return emit(out, cap, "%s", s);

    const char *part;
    const char *r;
    if (starts(s, "encoder.")) {
        part = "encoder";
        r = s + 8;
    } else if (starts(s, "decoder.")) {
        part = "decoder";
        r = s + 8;
    } else {
        return 0; // loss.*, discriminator etc.
    }

    if (starts(r, "conv_in.") || starts(r, "conv_out.")) return emit(out, cap, "%s.%s", part, r);
    if (starts(r, "norm_out.")) return emit(out, cap, "%s.conv_norm_out.%s", part, r + 9);
    if (starts(r, "mid.")) return map_mid(part, r + 4, out, cap);

    const int enc = part[0] == 'e';
    const char *lvl = enc ? "down." : "up.";
    if (!starts(r, lvl)) return 0;
    const char *p = r + strlen(lvl);
    int k = parse_index(&p);
    if (k < 0) return 0;
    int b = k;
    if (!enc) {
        if (k >= DF_LDM_VAE_LEVELS) return 0;
        b = DF_LDM_VAE_LEVELS - 1 - k;
    }
    const char *blocks = enc ? "down_blocks" : "up_blocks";
    if (starts(p, "block.")) {
        p += 6;
        int j = parse_index(&p);
        char t[256];
        if (j < 0 || !map_resnet_tail(p, t, sizeof t)) return 0;
        return emit(out, cap, "%s.%s.%d.resnets.%d.%s", part, blocks, b, j, t);
    }
    if (enc && starts(p, "downsample.conv."))
        return emit(out, cap, "encoder.down_blocks.%d.downsamplers.0.conv.%s", b, p + 16);
    if (!enc && starts(p, "upsample.conv."))
        return emit(out, cap, "decoder.up_blocks.%d.upsamplers.0.conv.%s", b, p + 14);
    return 0;
}

// OpenCLIP resblock tail -> HF layer tail.
static int map_openclip_layer(int i, const char *t, char *out, size_t cap) {
    static const char *const from[] = {"ln_1.", "ln_2.", "mlp.c_fc.", "mlp.c_proj.",
                                       "attn.out_proj."};
    static const char *const to[] = {"layer_norm1.", "layer_norm2.", "mlp.fc1.", "mlp.fc2.",
                                     "self_attn.out_proj."};
    for (size_t k = 0; k < sizeof from / sizeof from[0]; k++)
        if (starts(t, from[k]))
            return emit(out, cap, "text_model.encoder.layers.%d.%s%s", i, to[k],
                        t + strlen(from[k]));
    return 0; // attn.in_proj_* are split by weights.c; anything else is unknown
}

int df_i_ldm_map_clip(const char *ldm, int which, char *out, size_t cap) {
    if (which == 0) {
        const char *s;
        if (starts(ldm, "cond_stage_model.transformer.")) s = ldm + 29;
        else if (starts(ldm, "conditioner.embedders.0.transformer.")) s = ldm + 36;
        else return 0;
        // position_ids is an I64 buffer, not a weight.
        const char *dot = strrchr(s, '.');
        if (strcmp(dot ? dot + 1 : s, "position_ids") == 0) return 0;
        return emit(out, cap, "%s", s);
    }
    if (which != 1) return 0;
    if (!starts(ldm, "conditioner.embedders.1.model.")) return 0;
    const char *s = ldm + 30;
    if (strcmp(s, "token_embedding.weight") == 0)
        return emit(out, cap, "text_model.embeddings.token_embedding.weight");
    if (strcmp(s, "positional_embedding") == 0)
        return emit(out, cap, "text_model.embeddings.position_embedding.weight");
    if (starts(s, "ln_final.")) return emit(out, cap, "text_model.final_layer_norm.%s", s + 9);
    if (starts(s, "transformer.resblocks.")) {
        const char *p = s + 22;
        int i = parse_index(&p);
        if (i < 0) return 0;
        return map_openclip_layer(i, p, out, cap);
    }
    return 0; // text_projection (weights.c transposes it), logit_scale, attn_mask, ...
}
