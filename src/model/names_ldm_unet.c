// Single-file (LDM/SGM) UNet names -> diffusers names (sdxl.md §1.3).
//
//   model.diffusion_model.time_embed.{0,2}          -> time_embedding.linear_{1,2}
//   model.diffusion_model.label_emb.0.{0,2}         -> add_embedding.linear_{1,2}
//   model.diffusion_model.input_blocks.0.0          -> conv_in
//   model.diffusion_model.out.{0,2}                 -> conv_norm_out, conv_out
//   input_blocks.i (i >= 1): level b = (i-1)/(L+1), slot l = (i-1)%(L+1)
//       .0.op            -> down_blocks.b.downsamplers.0.conv
//       .0.<resnet>      -> down_blocks.b.resnets.l.<resnet>
//       .1.<transformer> -> down_blocks.b.attentions.l.<transformer>
//   middle_block.{0,1,2} -> mid_block.resnets.0, mid_block.attentions.0, mid_block.resnets.1
//   output_blocks.i: level b = i/(L+1), slot l = i%(L+1)
//       .0.<resnet> -> up_blocks.b.resnets.l; .1.conv or .2.conv -> up_blocks.b.upsamplers.0.conv;
//       .1.<transformer> -> up_blocks.b.attentions.l
//   resnet: in_layers.0 norm1, in_layers.2 conv1, emb_layers.1 time_emb_proj, out_layers.0 norm2,
//           out_layers.3 conv2, skip_connection conv_shortcut. Transformer names are identical.
// L (layers_per_block) is read from the file (df_i_ldm_unet_layers): the first
// `input_blocks.i.0.op` has i = L+1.
// Unrecognised names under model.diffusion_model. keep their LDM name, so they show up as extra
// (unused) tensors instead of vanishing.
#include "model/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LDM_PREFIX "model.diffusion_model."

// Parses "<int>." at *s; advances *s past the dot. Returns -1 if absent.
static int take_index(const char **s) {
    const char *p = *s;
    if (*p < '0' || *p > '9') return -1;
    long v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p - '0');
        if (v > 1000000) return -1;
        p++;
    }
    if (*p != '.') return -1;
    *s = p + 1;
    return (int)v;
}

static int starts(const char *s, const char *pre) {
    return strncmp(s, pre, strlen(pre)) == 0;
}

// Layers per block from the file's names (the caller computes it once per file).
int df_i_ldm_unet_layers(const df_st_file *f) {
    int first_op = -1, max_in = 0;
    int n = df_st_count(f);
    for (int i = 0; i < n; i++) {
        const char *s = df_st_get(f, i)->name;
        if (!starts(s, LDM_PREFIX "input_blocks.")) continue;
        s += strlen(LDM_PREFIX "input_blocks.");
        int idx = take_index(&s);
        if (idx < 0) continue;
        if (idx > max_in) max_in = idx;
        if (take_index(&s) == 0 && starts(s, "op.") && (first_op < 0 || idx < first_op))
            first_op = idx;
    }
    int l = first_op > 0 ? first_op - 1 : max_in; // one level without downsampler: 1..L
    if (l < 1) l = 1;
    return l;
}

static const char *map_resnet(const char *s, const char **tail) {
    static const char *const tab[][2] = {
        {"in_layers.0.", "norm1."},           {"in_layers.2.", "conv1."},
        {"emb_layers.1.", "time_emb_proj."},  {"out_layers.0.", "norm2."},
        {"out_layers.3.", "conv2."},          {"skip_connection.", "conv_shortcut."}};
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        if (starts(s, tab[i][0])) {
            *tail = s + strlen(tab[i][0]);
            return tab[i][1];
        }
    }
    return NULL;
}

// out = "<kind>.<b>.<what>[.<l>]." + mid + tail  (l < 0: no slot index)
static int put(char *out, size_t cap, const char *kind, int b, const char *what, int l,
               const char *mid, const char *tail) {
    int n;
    if (b < 0) n = snprintf(out, cap, "%s.%s.%s%s", kind, what, mid ? mid : "", tail);
    else if (l < 0) n = snprintf(out, cap, "%s.%d.%s.%s%s", kind, b, what, mid ? mid : "", tail);
    else n = snprintf(out, cap, "%s.%d.%s.%d.%s%s", kind, b, what, l, mid ? mid : "", tail);
    return n >= 0 && (size_t)n < cap;
}

int df_i_ldm_map_unet(int layers, const char *ldm, char *out, size_t cap) {
    if (!starts(ldm, LDM_PREFIX)) return 0;
    const char *s = ldm + strlen(LDM_PREFIX);
    static const char *const top[][2] = {
        {"time_embed.0.", "time_embedding.linear_1."}, {"time_embed.2.", "time_embedding.linear_2."},
        {"label_emb.0.0.", "add_embedding.linear_1."}, {"label_emb.0.2.", "add_embedding.linear_2."},
        {"input_blocks.0.0.", "conv_in."},             {"out.0.", "conv_norm_out."},
        {"out.2.", "conv_out."}};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) {
        if (starts(s, top[i][0])) {
            int n = snprintf(out, cap, "%s%s", top[i][1], s + strlen(top[i][0]));
            return n >= 0 && (size_t)n < cap;
        }
    }
    const char *tail = NULL, *res = NULL;
    const char *p = s;
    if (starts(p, "input_blocks.")) {
        p += strlen("input_blocks.");
        int i = take_index(&p), sub = i >= 1 ? take_index(&p) : -1;
        if (sub >= 0) {
            int l1 = layers + 1, b = (i - 1) / l1, l = (i - 1) % l1;
            if (sub == 0 && starts(p, "op."))
                return put(out, cap, "down_blocks", b, "downsamplers.0.conv", -1, NULL, p + 3);
            if (sub == 0 && (res = map_resnet(p, &tail)))
                return put(out, cap, "down_blocks", b, "resnets", l, res, tail);
            if (sub == 1) return put(out, cap, "down_blocks", b, "attentions", l, NULL, p);
        }
    } else if (starts(p, "middle_block.")) {
        p += strlen("middle_block.");
        int sub = take_index(&p);
        if ((sub == 0 || sub == 2) && (res = map_resnet(p, &tail)))
            return put(out, cap, "mid_block", -1, sub ? "resnets.1" : "resnets.0", -1, res, tail);
        if (sub == 1) return put(out, cap, "mid_block", -1, "attentions.0", -1, NULL, p);
    } else if (starts(p, "output_blocks.")) {
        p += strlen("output_blocks.");
        int i = take_index(&p), sub = i >= 0 ? take_index(&p) : -1;
        if (sub >= 0) {
            int l1 = layers + 1, b = i / l1, l = i % l1;
            if (sub == 0 && (res = map_resnet(p, &tail)))
                return put(out, cap, "up_blocks", b, "resnets", l, res, tail);
            if ((sub == 1 || sub == 2) && starts(p, "conv."))
                return put(out, cap, "up_blocks", b, "upsamplers.0.conv", -1, NULL, p + 5);
            if (sub == 1) return put(out, cap, "up_blocks", b, "attentions", l, NULL, p);
        }
    }
    // Unknown: keep the LDM name (reported as an extra tensor by df_weights_unused).
    int n = snprintf(out, cap, "%s", ldm);
    return n >= 0 && (size_t)n < cap;
}
