// df-make-model: writes a complete random-weight Stable Diffusion pipeline with the exact real
// shapes and names (diffusers folder or one original single-file checkpoint), so that performance
// work and the demo need no download.
//
//   df-make-model --arch {sdxl,sd15,tiny-sdxl,tiny-sd15,demo-sdxl} --layout {diffusers,single}
//                 --dtype {f16,bf16,f32} --seed N --out PATH [--unet-only]
//
// Weights are deterministic in (seed, tensor name): matrices and kernels uniform with variance
// 1/fan_in, 1-D norm weights 1 + small noise, biases small; the UNet conv_out and the VAE
// decoder conv_out are scaled down so the noise prediction has std about 1 and activations stay
// finite over 50 steps. Tensor lists are built from the same config that config.json receives.
// Files are streamed (never held in memory) to PATH.tmp and renamed on success.
#include "core/core.h"
#include "io/safetensors.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------------
// Tensor specs

enum { INIT_MAT, INIT_NORM, INIT_BIAS, INIT_EMB };

typedef struct spec {
    char name[160];
    int ndim;
    int64_t shape[4];
    int init;
    float scale; // extra multiplier (conv_out)
    // single-file: a fused tensor made of `nparts` consecutive specs (open_clip in_proj)
} spec;

typedef struct spec_list {
    spec *v;
    int n, cap;
    char prefix[96]; // prepended to every name
    int ldm;         // single-file naming (caller sets prefix + uses ldm names)
} spec_list;

static void add(spec_list *l, int init, float scale, int ndim, const int64_t *shape,
                const char *fmt, ...) DF_PRINTF(6, 7);

static void add(spec_list *l, int init, float scale, int ndim, const int64_t *shape,
                const char *fmt, ...) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        l->v = realloc(l->v, (size_t)l->cap * sizeof(spec));
        if (!l->v) {
            fprintf(stderr, "df-make-model: out of memory\n");
            exit(1);
        }
    }
    spec *s = &l->v[l->n++];
    memset(s, 0, sizeof *s);
    char tmp[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    snprintf(s->name, sizeof s->name, "%s%s", l->prefix, tmp);
    s->ndim = ndim;
    for (int i = 0; i < ndim; i++) s->shape[i] = shape[i];
    s->init = init;
    s->scale = scale;
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})

static void add_linear(spec_list *l, const char *name, int64_t out, int64_t in, int bias) {
    add(l, INIT_MAT, 1.0f, 2, SHAPE(out, in), "%s.weight", name);
    if (bias) add(l, INIT_BIAS, 1.0f, 1, SHAPE(out), "%s.bias", name);
}

static void add_conv(spec_list *l, const char *name, int64_t out, int64_t in, int k, float scale) {
    add(l, INIT_MAT, scale, 4, SHAPE(out, in, k, k), "%s.weight", name);
    add(l, INIT_BIAS, scale, 1, SHAPE(out), "%s.bias", name);
}

static void add_norm(spec_list *l, const char *name, int64_t c) {
    add(l, INIT_NORM, 1.0f, 1, SHAPE(c), "%s.weight", name);
    add(l, INIT_BIAS, 1.0f, 1, SHAPE(c), "%s.bias", name);
}

// ---------------------------------------------------------------------------------------------
// Architectures

typedef struct unet_arch {
    int nb;               // number of levels
    int ch[4];            // block_out_channels
    int attn[4];          // level has cross-attention (down i / up nb-1-i)
    int heads[4];         // attention_head_dim list (SDXL: heads) or head count
    int depth[4];         // transformer_layers_per_block
    int layers;           // layers_per_block
    int ctx_dim;          // cross_attention_dim
    int linear_proj;      // use_linear_projection
    int add_time_dim;     // addition_time_embed_dim (0: no addition embedding)
    int add_proj_in;      // projection_class_embeddings_input_dim
    int sample_size;
    int heads_is_list;    // write attention_head_dim as a list
} unet_arch;

typedef struct clip_arch {
    int hidden, inter, layers, heads, proj; // proj 0: CLIPTextModel
    const char *act;
} clip_arch;

typedef struct vae_arch {
    int nb, ch[4], layers, sample_size;
    double scaling;
    int groups; // norm_num_groups (0: 32)
} vae_arch;

typedef struct arch {
    const char *name;
    int sdxl;
    unet_arch unet;
    clip_arch te1, te2;
    vae_arch vae;
} arch;

static const arch k_arches[] = {
    {"sdxl", 1,
     {3, {320, 640, 1280}, {0, 1, 1}, {5, 10, 20}, {1, 2, 10}, 2, 2048, 1, 256, 2816, 128, 1},
     {768, 3072, 12, 12, 0, "quick_gelu"},
     {1280, 5120, 32, 20, 1280, "gelu"},
     {4, {128, 256, 512, 512}, 2, 1024, 0.13025, 0}},
    {"sd15", 0,
     {4, {320, 640, 1280, 1280}, {1, 1, 1, 0}, {8, 8, 8, 8}, {1, 1, 1, 1}, 2, 768, 0, 0, 0, 64, 0},
     {768, 3072, 12, 12, 0, "quick_gelu"},
     {0, 0, 0, 0, 0, NULL},
     {4, {128, 256, 512, 512}, 2, 512, 0.18215, 0}},
    {"tiny-sdxl", 1,
     {3, {32, 64, 64}, {0, 1, 1}, {2, 4, 4}, {1, 1, 2}, 2, 64, 1, 8, 80, 64, 1},
     {32, 37, 3, 4, 0, "quick_gelu"},
     {32, 64, 4, 4, 32, "gelu"},
     {4, {32, 32, 64, 64}, 2, 512, 0.13025, 0}},
    // demo-sdxl: the README demo's default, small enough for 2048^2 images in seconds: SDXL
    // structure (text_time embedding, two text encoders) with self-attention only at the deepest
    // level and a narrow VAE (8 groups).
    {"demo-sdxl", 1,
     {3, {32, 64, 64}, {0, 0, 1}, {2, 4, 4}, {1, 1, 1}, 2, 64, 1, 8, 80, 64, 1},
     {32, 37, 3, 4, 0, "quick_gelu"},
     {32, 64, 4, 4, 32, "gelu"},
     {4, {16, 16, 32, 32}, 1, 512, 0.13025, 8}},
    {"tiny-sd15", 0,
     {4, {32, 32, 32, 64}, {1, 1, 1, 0}, {4, 4, 4, 4}, {1, 1, 1, 1}, 2, 32, 0, 0, 0, 64, 0},
     {32, 37, 3, 4, 0, "quick_gelu"},
     {0, 0, 0, 0, 0, NULL},
     {4, {32, 32, 32, 64}, 1, 512, 0.18215, 0}},
};

// ---------------------------------------------------------------------------------------------
// UNet tensors, diffusers names (ldm = 0) or original names (ldm = 1)

static void unet_resnet(spec_list *l, int ldm, const char *p, int in, int out, int ted) {
    char n[160];
#define N(d, o) (snprintf(n, sizeof n, "%s.%s", p, ldm ? (o) : (d)), n)
    add_norm(l, N("norm1", "in_layers.0"), in);
    add_conv(l, N("conv1", "in_layers.2"), out, in, 3, 1.0f);
    if (ted) add_linear(l, N("time_emb_proj", "emb_layers.1"), out, ted, 1);
    add_norm(l, N("norm2", "out_layers.0"), out);
    add_conv(l, N("conv2", "out_layers.3"), out, out, 3, 1.0f);
    if (in != out) add_conv(l, N("conv_shortcut", "skip_connection"), out, in, 1, 1.0f);
#undef N
}

static void unet_transformer(spec_list *l, const char *p, int c, int depth, int ctx, int linear) {
    char n[200];
    snprintf(n, sizeof n, "%s.norm", p);
    add_norm(l, n, c);
    snprintf(n, sizeof n, "%s.proj_in", p);
    if (linear) add_linear(l, n, c, c, 1);
    else add_conv(l, n, c, c, 1, 1.0f);
    for (int d = 0; d < depth; d++) {
        char b[180];
        snprintf(b, sizeof b, "%s.transformer_blocks.%d", p, d);
        snprintf(n, sizeof n, "%s.norm1", b), add_norm(l, n, c);
        snprintf(n, sizeof n, "%s.attn1.to_q", b), add_linear(l, n, c, c, 0);
        snprintf(n, sizeof n, "%s.attn1.to_k", b), add_linear(l, n, c, c, 0);
        snprintf(n, sizeof n, "%s.attn1.to_v", b), add_linear(l, n, c, c, 0);
        snprintf(n, sizeof n, "%s.attn1.to_out.0", b), add_linear(l, n, c, c, 1);
        snprintf(n, sizeof n, "%s.norm2", b), add_norm(l, n, c);
        snprintf(n, sizeof n, "%s.attn2.to_q", b), add_linear(l, n, c, c, 0);
        snprintf(n, sizeof n, "%s.attn2.to_k", b), add_linear(l, n, c, ctx, 0);
        snprintf(n, sizeof n, "%s.attn2.to_v", b), add_linear(l, n, c, ctx, 0);
        snprintf(n, sizeof n, "%s.attn2.to_out.0", b), add_linear(l, n, c, c, 1);
        snprintf(n, sizeof n, "%s.norm3", b), add_norm(l, n, c);
        snprintf(n, sizeof n, "%s.ff.net.0.proj", b), add_linear(l, n, 8 * c, c, 1);
        snprintf(n, sizeof n, "%s.ff.net.2", b), add_linear(l, n, c, 4 * c, 1);
    }
    snprintf(n, sizeof n, "%s.proj_out", p);
    if (linear) add_linear(l, n, c, c, 1);
    else add_conv(l, n, c, c, 1, 1.0f);
}

static void unet_specs(spec_list *l, const unet_arch *a, int ldm) {
    const int L = a->layers, nb = a->nb, ted = 4 * a->ch[0];
    char p[160];
    add_conv(l, ldm ? "input_blocks.0.0" : "conv_in", a->ch[0], 4, 3, 1.0f);
    add_linear(l, ldm ? "time_embed.0" : "time_embedding.linear_1", ted, a->ch[0], 1);
    add_linear(l, ldm ? "time_embed.2" : "time_embedding.linear_2", ted, ted, 1);
    if (a->add_time_dim) {
        add_linear(l, ldm ? "label_emb.0.0" : "add_embedding.linear_1", ted, a->add_proj_in, 1);
        add_linear(l, ldm ? "label_emb.0.2" : "add_embedding.linear_2", ted, ted, 1);
    }
    int out = a->ch[0];
    for (int b = 0; b < nb; b++) {
        int in = out;
        out = a->ch[b];
        for (int j = 0; j < L; j++) {
            int ib = 1 + b * (L + 1) + j;
            if (ldm) snprintf(p, sizeof p, "input_blocks.%d.0", ib);
            else snprintf(p, sizeof p, "down_blocks.%d.resnets.%d", b, j);
            unet_resnet(l, ldm, p, j == 0 ? in : out, out, ted);
            if (a->attn[b]) {
                if (ldm) snprintf(p, sizeof p, "input_blocks.%d.1", ib);
                else snprintf(p, sizeof p, "down_blocks.%d.attentions.%d", b, j);
                unet_transformer(l, p, out, a->depth[b], a->ctx_dim, a->linear_proj);
            }
        }
        if (b < nb - 1) {
            if (ldm) snprintf(p, sizeof p, "input_blocks.%d.0.op", (b + 1) * (L + 1));
            else snprintf(p, sizeof p, "down_blocks.%d.downsamplers.0.conv", b);
            add_conv(l, p, out, out, 3, 1.0f);
        }
    }
    int cm = a->ch[nb - 1];
    unet_resnet(l, ldm, ldm ? "middle_block.0" : "mid_block.resnets.0", cm, cm, ted);
    unet_transformer(l, ldm ? "middle_block.1" : "mid_block.attentions.0", cm, a->depth[nb - 1],
                     a->ctx_dim, a->linear_proj);
    unet_resnet(l, ldm, ldm ? "middle_block.2" : "mid_block.resnets.1", cm, cm, ted);
    int prev = cm;
    for (int u = 0; u < nb; u++) {
        int lvl = nb - 1 - u; // down level this up block mirrors
        int outc = a->ch[lvl];
        int inc = a->ch[lvl > 0 ? lvl - 1 : 0];
        for (int j = 0; j <= L; j++) {
            int skip = (j == L) ? inc : outc;
            int rin = (j == 0) ? prev : outc;
            int ob = u * (L + 1) + j;
            if (ldm) snprintf(p, sizeof p, "output_blocks.%d.0", ob);
            else snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", u, j);
            unet_resnet(l, ldm, p, rin + skip, outc, ted);
            if (a->attn[lvl]) {
                if (ldm) snprintf(p, sizeof p, "output_blocks.%d.1", ob);
                else snprintf(p, sizeof p, "up_blocks.%d.attentions.%d", u, j);
                unet_transformer(l, p, outc, a->depth[lvl], a->ctx_dim, a->linear_proj);
            }
        }
        if (u < nb - 1) {
            if (ldm)
                snprintf(p, sizeof p, "output_blocks.%d.%d.conv", u * (L + 1) + L,
                         a->attn[lvl] ? 2 : 1);
            else snprintf(p, sizeof p, "up_blocks.%d.upsamplers.0.conv", u);
            add_conv(l, p, outc, outc, 3, 1.0f);
        }
        prev = outc;
    }
    add_norm(l, ldm ? "out.0" : "conv_norm_out", a->ch[0]);
    add_conv(l, ldm ? "out.2" : "conv_out", 4, a->ch[0], 3, 0.2f);
}

// ---------------------------------------------------------------------------------------------
// VAE tensors (encoder + decoder + quant convs)

static void vae_resnet(spec_list *l, int ldm, const char *p, int in, int out) {
    char n[180];
#define N(s) (snprintf(n, sizeof n, "%s.%s", p, s), n)
    add_norm(l, N("norm1"), in);
    add_conv(l, N("conv1"), out, in, 3, 1.0f);
    add_norm(l, N("norm2"), out);
    add_conv(l, N("conv2"), out, out, 3, 1.0f);
    if (in != out) add_conv(l, N(ldm ? "nin_shortcut" : "conv_shortcut"), out, in, 1, 1.0f);
#undef N
}

static void vae_attn(spec_list *l, int ldm, const char *p, int c) {
    char n[180];
    const char *names_d[5] = {"group_norm", "to_q", "to_k", "to_v", "to_out.0"};
    const char *names_l[5] = {"norm", "q", "k", "v", "proj_out"};
    snprintf(n, sizeof n, "%s.%s", p, ldm ? names_l[0] : names_d[0]);
    add_norm(l, n, c);
    for (int i = 1; i < 5; i++) {
        snprintf(n, sizeof n, "%s.%s", p, ldm ? names_l[i] : names_d[i]);
        if (ldm) add_conv(l, n, c, c, 1, 1.0f); // LDM stores 1x1 convs [C,C,1,1]
        else add_linear(l, n, c, c, 1);
    }
}

static void vae_mid(spec_list *l, int ldm, const char *side, int c) {
    char p[160];
    snprintf(p, sizeof p, ldm ? "%s.mid.block_1" : "%s.mid_block.resnets.0", side);
    vae_resnet(l, ldm, p, c, c);
    snprintf(p, sizeof p, ldm ? "%s.mid.attn_1" : "%s.mid_block.attentions.0", side);
    vae_attn(l, ldm, p, c);
    snprintf(p, sizeof p, ldm ? "%s.mid.block_2" : "%s.mid_block.resnets.1", side);
    vae_resnet(l, ldm, p, c, c);
}

static void vae_specs(spec_list *l, const vae_arch *a, int ldm) {
    char p[160];
    const int nb = a->nb, L = a->layers, top = a->ch[nb - 1];
    // encoder
    add_conv(l, "encoder.conv_in", a->ch[0], 3, 3, 1.0f);
    int out = a->ch[0];
    for (int b = 0; b < nb; b++) {
        int in = out;
        out = a->ch[b];
        for (int j = 0; j < L; j++) {
            if (ldm) snprintf(p, sizeof p, "encoder.down.%d.block.%d", b, j);
            else snprintf(p, sizeof p, "encoder.down_blocks.%d.resnets.%d", b, j);
            vae_resnet(l, ldm, p, j == 0 ? in : out, out);
        }
        if (b < nb - 1) {
            if (ldm) snprintf(p, sizeof p, "encoder.down.%d.downsample.conv", b);
            else snprintf(p, sizeof p, "encoder.down_blocks.%d.downsamplers.0.conv", b);
            add_conv(l, p, out, out, 3, 1.0f);
        }
    }
    vae_mid(l, ldm, "encoder", top);
    add_norm(l, ldm ? "encoder.norm_out" : "encoder.conv_norm_out", top);
    add_conv(l, "encoder.conv_out", 8, top, 3, 1.0f);
    add_conv(l, "quant_conv", 8, 8, 1, 1.0f);
    add_conv(l, "post_quant_conv", 4, 4, 1, 1.0f);
    // decoder
    add_conv(l, "decoder.conv_in", top, 4, 3, 1.0f);
    vae_mid(l, ldm, "decoder", top);
    int prev = top;
    for (int u = 0; u < nb; u++) {
        int outc = a->ch[nb - 1 - u];
        for (int j = 0; j <= L; j++) {
            if (ldm) snprintf(p, sizeof p, "decoder.up.%d.block.%d", nb - 1 - u, j);
            else snprintf(p, sizeof p, "decoder.up_blocks.%d.resnets.%d", u, j);
            vae_resnet(l, ldm, p, j == 0 ? prev : outc, outc);
        }
        if (u < nb - 1) {
            if (ldm) snprintf(p, sizeof p, "decoder.up.%d.upsample.conv", nb - 1 - u);
            else snprintf(p, sizeof p, "decoder.up_blocks.%d.upsamplers.0.conv", u);
            add_conv(l, p, outc, outc, 3, 1.0f);
        }
        prev = outc;
    }
    add_norm(l, ldm ? "decoder.norm_out" : "decoder.conv_norm_out", a->ch[0]);
    add_conv(l, "decoder.conv_out", 3, a->ch[0], 3, 0.5f);
}

// ---------------------------------------------------------------------------------------------
// CLIP text encoders: HF names (CLIP-L everywhere, bigG in diffusers folders) or open_clip
// names (bigG in an SDXL single file).

static void clip_specs(spec_list *l, const clip_arch *a) {
    const int D = a->hidden;
    add(l, INIT_EMB, 1.0f, 2, SHAPE(49408, D), "text_model.embeddings.token_embedding.weight");
    add(l, INIT_EMB, 1.0f, 2, SHAPE(77, D), "text_model.embeddings.position_embedding.weight");
    char p[160];
    for (int i = 0; i < a->layers; i++) {
        const char *qkvo[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
        for (int k = 0; k < 4; k++) {
            snprintf(p, sizeof p, "text_model.encoder.layers.%d.self_attn.%s", i, qkvo[k]);
            add_linear(l, p, D, D, 1);
        }
        snprintf(p, sizeof p, "text_model.encoder.layers.%d.layer_norm1", i), add_norm(l, p, D);
        snprintf(p, sizeof p, "text_model.encoder.layers.%d.mlp.fc1", i);
        add_linear(l, p, a->inter, D, 1);
        snprintf(p, sizeof p, "text_model.encoder.layers.%d.mlp.fc2", i);
        add_linear(l, p, D, a->inter, 1);
        snprintf(p, sizeof p, "text_model.encoder.layers.%d.layer_norm2", i), add_norm(l, p, D);
    }
    add_norm(l, "text_model.final_layer_norm", D);
    if (a->proj) add_linear(l, "text_projection", a->proj, D, 0);
}

static void openclip_specs(spec_list *l, const clip_arch *a) {
    const int D = a->hidden;
    add(l, INIT_EMB, 1.0f, 2, SHAPE(49408, D), "token_embedding.weight");
    add(l, INIT_EMB, 1.0f, 2, SHAPE(77, D), "positional_embedding");
    char p[160];
    for (int i = 0; i < a->layers; i++) {
        snprintf(p, sizeof p, "transformer.resblocks.%d.ln_1", i), add_norm(l, p, D);
        snprintf(p, sizeof p, "transformer.resblocks.%d.attn.in_proj_weight", i);
        add(l, INIT_MAT, 1.0f, 2, SHAPE(3 * D, D), "%s", p);
        snprintf(p, sizeof p, "transformer.resblocks.%d.attn.in_proj_bias", i);
        add(l, INIT_BIAS, 1.0f, 1, SHAPE(3 * D), "%s", p);
        snprintf(p, sizeof p, "transformer.resblocks.%d.attn.out_proj", i);
        add_linear(l, p, D, D, 1);
        snprintf(p, sizeof p, "transformer.resblocks.%d.ln_2", i), add_norm(l, p, D);
        snprintf(p, sizeof p, "transformer.resblocks.%d.mlp.c_fc", i);
        add_linear(l, p, a->inter, D, 1);
        snprintf(p, sizeof p, "transformer.resblocks.%d.mlp.c_proj", i);
        add_linear(l, p, D, a->inter, 1);
    }
    add_norm(l, "ln_final", D);
    add(l, INIT_MAT, 1.0f, 2, SHAPE(D, a->proj), "text_projection"); // x @ P (transposed)
}

// ---------------------------------------------------------------------------------------------
// Deterministic values: splitmix64 stream seeded by (seed, FNV-1a of the name).

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

// Fills n values of spec s starting at element `off` (uniform with the target variance).
static void gen_values(float *dst, size_t n, const spec *s, uint64_t *state) {
    double fan_in = 1;
    for (int i = 1; i < s->ndim; i++) fan_in *= (double)s->shape[i];
    float a; // uniform half-width
    float base = 0;
    switch (s->init) {
    case INIT_MAT: a = (float)sqrt(3.0 / fan_in); break;
    case INIT_NORM: a = 0.1f * 1.7320508f, base = 1.0f; break;
    case INIT_BIAS: a = 0.05f * 1.7320508f; break;
    default: a = 0.5f * 1.7320508f; break; // embeddings: std 0.5
    }
    a *= s->scale;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = splitmix(state);
        float u = (float)((double)(r >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
        dst[i] = base + a * u;
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming safetensors writer (the library writer holds tensors in memory; a 5 GB UNet must be
// generated chunk by chunk).

static int write_all(FILE *f, const void *p, size_t n) {
    return fwrite(p, 1, n, f) == n;
}

static df_status write_safetensors(const char *path, const spec_list *l, df_dtype dt,
                                   uint64_t seed) {
    const size_t es = df_dtype_size(dt);
    // header
    size_t cap = 256 + (size_t)l->n * 320, len = 0;
    char *hdr = malloc(cap);
    DF_FAIL_IF(!hdr, DF_ERR_NOMEM, "header of %zu bytes", cap);
    len += (size_t)snprintf(hdr + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    for (int i = 0; i < l->n; i++) {
        const spec *s = &l->v[i];
        uint64_t numel = 1;
        for (int d = 0; d < s->ndim; d++) numel *= (uint64_t)s->shape[d];
        len += (size_t)snprintf(hdr + len, cap - len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                                s->name, df_dtype_name(dt));
        for (int d = 0; d < s->ndim; d++)
            len += (size_t)snprintf(hdr + len, cap - len, "%s%lld", d ? "," : "",
                                    (long long)s->shape[d]);
        len += (size_t)snprintf(hdr + len, cap - len, "],\"data_offsets\":[%llu,%llu]}",
                                (unsigned long long)off, (unsigned long long)(off + numel * es));
        off += numel * es;
    }
    len += (size_t)snprintf(hdr + len, cap - len, "}");
    while (len % 8) hdr[len++] = ' ';

    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(hdr);
        return DF_ERROR(DF_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)len >> (8 * i));
    int ok = write_all(f, len8, 8) && write_all(f, hdr, len);
    free(hdr);
    enum { CHUNK = 1 << 20 };
    float *buf = malloc(CHUNK * sizeof(float));
    uint16_t *h = malloc(CHUNK * sizeof(uint16_t));
    ok = ok && buf && h;
    for (int i = 0; ok && i < l->n; i++) {
        const spec *s = &l->v[i];
        uint64_t numel = 1;
        for (int d = 0; d < s->ndim; d++) numel *= (uint64_t)s->shape[d];
        uint64_t state = seed ^ fnv1a(s->name);
        for (uint64_t done = 0; ok && done < numel;) {
            size_t n = (size_t)(numel - done < CHUNK ? numel - done : CHUNK);
            gen_values(buf, n, s, &state);
            if (dt == DF_DTYPE_F32) {
                ok = write_all(f, buf, n * 4);
            } else {
                for (size_t k = 0; k < n; k++)
                    h[k] = dt == DF_DTYPE_F16 ? df_f32_to_f16(buf[k]) : df_f32_to_bf16(buf[k]);
                ok = write_all(f, h, n * 2);
            }
            done += n;
        }
    }
    free(buf);
    free(h);
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return DF_ERROR(DF_ERR_IO, "cannot write %s: %s", path, strerror(e));
    }
    return DF_OK;
}

// ---------------------------------------------------------------------------------------------
// Config files

static df_status write_text(const char *path, const char *text) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return DF_ERROR(DF_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    int ok = fputs(text, f) >= 0;
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return DF_ERROR(DF_ERR_IO, "cannot write %s", path);
    }
    return DF_OK;
}

static df_status copy_file(const char *dst, const char *src) {
    FILE *in = fopen(src, "rb");
    if (!in) return DF_ERROR(DF_ERR_IO, "cannot open %s: %s", src, strerror(errno));
    fseek(in, 0, SEEK_END);
    long n = ftell(in);
    fseek(in, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf) {
        fclose(in);
        return DF_ERROR(DF_ERR_NOMEM, "%ld bytes", n);
    }
    size_t got = fread(buf, 1, (size_t)n, in);
    fclose(in);
    buf[got] = 0;
    df_status st = write_text(dst, buf);
    free(buf);
    return st;
}

static void list_int(char *out, size_t cap, const int *v, int n) {
    size_t len = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < n; i++) len += (size_t)snprintf(out + len, cap - len, "%s%d", i ? ", " : "", v[i]);
    snprintf(out + len, cap - len, "]");
}

static df_status write_unet_config(const char *path, const arch *A) {
    const unet_arch *a = &A->unet;
    char ch[64], heads[64], depth[64], down[256] = "[", up[256] = "[", buf[4096];
    list_int(ch, sizeof ch, a->ch, a->nb);
    list_int(heads, sizeof heads, a->heads, a->nb);
    list_int(depth, sizeof depth, a->depth, a->nb);
    for (int b = 0; b < a->nb; b++) {
        strcat(down, b ? ", " : "");
        strcat(down, a->attn[b] ? "\"CrossAttnDownBlock2D\"" : "\"DownBlock2D\"");
        strcat(up, b ? ", " : "");
        strcat(up, a->attn[a->nb - 1 - b] ? "\"CrossAttnUpBlock2D\"" : "\"UpBlock2D\"");
    }
    strcat(down, "]");
    strcat(up, "]");
    char add[256] = "\"addition_embed_type\": null,\n";
    if (a->add_time_dim)
        snprintf(add, sizeof add,
                 "\"addition_embed_type\": \"text_time\",\n  \"addition_time_embed_dim\": %d,\n"
                 "  \"projection_class_embeddings_input_dim\": %d,\n",
                 a->add_time_dim, a->add_proj_in);
    snprintf(buf, sizeof buf,
             "{\n  \"_class_name\": \"UNet2DConditionModel\",\n  \"_diffusers_version\": "
             "\"0.24.0\",\n  \"act_fn\": \"silu\",\n  %s  \"attention_head_dim\": %s,\n"
             "  \"block_out_channels\": %s,\n  \"cross_attention_dim\": %d,\n"
             "  \"down_block_types\": %s,\n  \"flip_sin_to_cos\": true,\n  \"freq_shift\": 0,\n"
             "  \"in_channels\": 4,\n  \"layers_per_block\": %d,\n"
             "  \"mid_block_type\": \"UNetMidBlock2DCrossAttn\",\n  \"norm_eps\": 1e-05,\n"
             "  \"norm_num_groups\": 32,\n  \"out_channels\": 4,\n  \"sample_size\": %d,\n"
             "  \"transformer_layers_per_block\": %s,\n  \"up_block_types\": %s,\n"
             "  \"use_linear_projection\": %s\n}\n",
             add, a->heads_is_list ? heads : (snprintf(heads, sizeof heads, "%d", a->heads[0]), heads),
             ch, a->ctx_dim, down, a->layers, a->sample_size, depth, up,
             a->linear_proj ? "true" : "false");
    return write_text(path, buf);
}

static df_status write_vae_config(const char *path, const vae_arch *a) {
    char ch[64], buf[2048];
    list_int(ch, sizeof ch, a->ch, a->nb);
    snprintf(buf, sizeof buf,
             "{\n  \"_class_name\": \"AutoencoderKL\",\n  \"_diffusers_version\": \"0.24.0\",\n"
             "  \"act_fn\": \"silu\",\n  \"block_out_channels\": %s,\n  \"down_block_types\": "
             "[\"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\", "
             "\"DownEncoderBlock2D\"],\n  \"force_upcast\": true,\n  \"in_channels\": 3,\n"
             "  \"latent_channels\": 4,\n  \"layers_per_block\": %d,\n  \"norm_num_groups\": %d,\n"
             "  \"out_channels\": 3,\n  \"sample_size\": %d,\n  \"scaling_factor\": %g,\n"
             "  \"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\", "
             "\"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]\n}\n",
             ch, a->layers, a->groups ? a->groups : 32, a->sample_size, a->scaling);
    return write_text(path, buf);
}

static df_status write_clip_config(const char *path, const clip_arch *a, df_dtype dt) {
    char buf[2048];
    snprintf(buf, sizeof buf,
             "{\n  \"architectures\": [\"%s\"],\n  \"bos_token_id\": 0,\n  \"eos_token_id\": 2,\n"
             "  \"hidden_act\": \"%s\",\n  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n"
             "  \"layer_norm_eps\": 1e-05,\n  \"max_position_embeddings\": 77,\n"
             "  \"model_type\": \"clip_text_model\",\n  \"num_attention_heads\": %d,\n"
             "  \"num_hidden_layers\": %d,\n  \"pad_token_id\": 1,\n  \"projection_dim\": %d,\n"
             "  \"torch_dtype\": \"%s\",\n  \"vocab_size\": 49408\n}\n",
             a->proj ? "CLIPTextModelWithProjection" : "CLIPTextModel", a->act, a->hidden,
             a->inter, a->heads, a->layers, a->proj ? a->proj : a->hidden,
             dt == DF_DTYPE_F32 ? "float32" : dt == DF_DTYPE_F16 ? "float16" : "bfloat16");
    return write_text(path, buf);
}

static df_status write_scheduler_config(const char *path, int sdxl) {
    char buf[1024];
    snprintf(buf, sizeof buf,
             "{\n  \"_class_name\": \"%s\",\n  \"_diffusers_version\": \"0.24.0\",\n"
             "  \"beta_end\": 0.012,\n  \"beta_schedule\": \"scaled_linear\",\n"
             "  \"beta_start\": 0.00085,\n  \"clip_sample\": false,\n"
             "  \"num_train_timesteps\": 1000,\n  \"prediction_type\": \"epsilon\",\n"
             "  \"set_alpha_to_one\": false,\n  \"skip_prk_steps\": true,\n"
             "  \"steps_offset\": 1,\n  \"timestep_spacing\": \"leading\",\n"
             "  \"trained_betas\": null\n}\n",
             sdxl ? "EulerDiscreteScheduler" : "PNDMScheduler");
    return write_text(path, buf);
}

static df_status write_tokenizer(const char *dir, int pad_bang) {
    char p[4200], src[4200];
    const char *data = getenv("DF_DATA_DIR");
    char def[4200];
    if (!data || !*data) {
        snprintf(def, sizeof def, "%s/data", DF_SOURCE_DIR);
        data = def;
    }
    snprintf(src, sizeof src, "%s/clip/vocab.json", data);
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    DF_TRY(copy_file(p, src));
    snprintf(src, sizeof src, "%s/clip/merges.txt", data);
    snprintf(p, sizeof p, "%s/merges.txt", dir);
    DF_TRY(copy_file(p, src));
    const char *pad = pad_bang ? "!" : "<|endoftext|>";
    char buf[1024];
    snprintf(buf, sizeof buf,
             "{\n  \"bos_token\": \"<|startoftext|>\",\n  \"eos_token\": \"<|endoftext|>\",\n"
             "  \"pad_token\": \"%s\",\n  \"unk_token\": \"<|endoftext|>\"\n}\n", pad);
    snprintf(p, sizeof p, "%s/special_tokens_map.json", dir);
    DF_TRY(write_text(p, buf));
    snprintf(buf, sizeof buf,
             "{\n  \"bos_token\": \"<|startoftext|>\",\n  \"eos_token\": \"<|endoftext|>\",\n"
             "  \"model_max_length\": 77,\n  \"pad_token\": \"%s\",\n"
             "  \"tokenizer_class\": \"CLIPTokenizer\",\n  \"unk_token\": \"<|endoftext|>\"\n}\n",
             pad);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    return write_text(p, buf);
}

static df_status make_dir(const char *path) {
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return DF_ERROR(DF_ERR_IO, "cannot create directory %s: %s", path, strerror(errno));
    return DF_OK;
}

// ---------------------------------------------------------------------------------------------

static df_status make_diffusers(const char *out, const arch *A, df_dtype dt, uint64_t seed,
                                int unet_only) {
    char p[4200];
    spec_list l = {0};
    DF_TRY(make_dir(out));
    snprintf(p, sizeof p, "%s/unet", out);
    DF_TRY(make_dir(p));
    snprintf(p, sizeof p, "%s/unet/config.json", out);
    DF_TRY(write_unet_config(p, A));
    unet_specs(&l, &A->unet, 0);
    snprintf(p, sizeof p, "%s/unet/diffusion_pytorch_model.safetensors", out);
    df_status st = write_safetensors(p, &l, dt, seed);
    l.n = 0;
    if (st == DF_OK && !unet_only) {
        snprintf(p, sizeof p, "%s/vae", out);
        DF_TRY(make_dir(p));
        snprintf(p, sizeof p, "%s/vae/config.json", out);
        DF_TRY(write_vae_config(p, &A->vae));
        vae_specs(&l, &A->vae, 0);
        snprintf(p, sizeof p, "%s/vae/diffusion_pytorch_model.safetensors", out);
        st = write_safetensors(p, &l, dt, seed + 1);
        l.n = 0;
        const clip_arch *te[2] = {&A->te1, &A->te2};
        for (int i = 0; st == DF_OK && i < (A->sdxl ? 2 : 1); i++) {
            const char *sub = i ? "text_encoder_2" : "text_encoder";
            snprintf(p, sizeof p, "%s/%s", out, sub);
            DF_TRY(make_dir(p));
            snprintf(p, sizeof p, "%s/%s/config.json", out, sub);
            DF_TRY(write_clip_config(p, te[i], dt));
            clip_specs(&l, te[i]);
            snprintf(p, sizeof p, "%s/%s/model.safetensors", out, sub);
            st = write_safetensors(p, &l, dt, seed + 2 + (uint64_t)i);
            l.n = 0;
            snprintf(p, sizeof p, "%s/%s", out, i ? "tokenizer_2" : "tokenizer");
            DF_TRY(make_dir(p));
            if (st == DF_OK) st = write_tokenizer(p, i == 1);
        }
        if (st == DF_OK) {
            snprintf(p, sizeof p, "%s/scheduler", out);
            DF_TRY(make_dir(p));
            snprintf(p, sizeof p, "%s/scheduler/scheduler_config.json", out);
            st = write_scheduler_config(p, A->sdxl);
        }
    }
    if (st == DF_OK) {
        char buf[2048];
        if (A->sdxl)
            snprintf(buf, sizeof buf,
                     "{\n  \"_class_name\": \"StableDiffusionXLPipeline\",\n"
                     "  \"_diffusers_version\": \"0.24.0\",\n"
                     "  \"force_zeros_for_empty_prompt\": true,\n"
                     "  \"scheduler\": [\"diffusers\", \"EulerDiscreteScheduler\"],\n"
                     "  \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],\n"
                     "  \"text_encoder_2\": [\"transformers\", \"CLIPTextModelWithProjection\"],\n"
                     "  \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"],\n"
                     "  \"tokenizer_2\": [\"transformers\", \"CLIPTokenizer\"],\n"
                     "  \"unet\": [\"diffusers\", \"UNet2DConditionModel\"],\n"
                     "  \"vae\": [\"diffusers\", \"AutoencoderKL\"]\n}\n");
        else
            snprintf(buf, sizeof buf,
                     "{\n  \"_class_name\": \"StableDiffusionPipeline\",\n"
                     "  \"_diffusers_version\": \"0.24.0\",\n"
                     "  \"requires_safety_checker\": false,\n"
                     "  \"scheduler\": [\"diffusers\", \"PNDMScheduler\"],\n"
                     "  \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],\n"
                     "  \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"],\n"
                     "  \"unet\": [\"diffusers\", \"UNet2DConditionModel\"],\n"
                     "  \"vae\": [\"diffusers\", \"AutoencoderKL\"]\n}\n");
        snprintf(p, sizeof p, "%s/model_index.json", out);
        st = write_text(p, buf);
    }
    free(l.v);
    return st;
}

static df_status make_single(const char *out, const arch *A, df_dtype dt, uint64_t seed) {
    spec_list l = {0};
    snprintf(l.prefix, sizeof l.prefix, "model.diffusion_model.");
    unet_specs(&l, &A->unet, 1);
    snprintf(l.prefix, sizeof l.prefix, "first_stage_model.");
    vae_specs(&l, &A->vae, 1);
    snprintf(l.prefix, sizeof l.prefix, "%s",
             A->sdxl ? "conditioner.embedders.0.transformer." : "cond_stage_model.transformer.");
    clip_specs(&l, &A->te1);
    if (A->sdxl) {
        snprintf(l.prefix, sizeof l.prefix, "conditioner.embedders.1.model.");
        openclip_specs(&l, &A->te2);
    }
    df_status st = write_safetensors(out, &l, dt, seed);
    free(l.v);
    return st;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: df-make-model --arch {sdxl,sd15,tiny-sdxl,tiny-sd15,demo-sdxl} --out PATH\n"
            "                     [--layout {diffusers,single}] [--dtype {f16,bf16,f32}]\n"
            "                     [--seed N] [--unet-only]\n"
            "Writes a random-weight model with the exact real shapes and names: a diffusers\n"
            "pipeline folder (default) or one original single-file checkpoint (.safetensors).\n"
            "  --arch       architecture (tiny-* have the golden fixtures' shapes; demo-sdxl is a\n"
            "               small SDXL-structured model for fast high-resolution demos)\n"
            "  --layout     diffusers (folder, default) or single (one file)\n"
            "  --dtype      stored weight dtype (default f16)\n"
            "  --seed       weight seed (default 0)\n"
            "  --unet-only  diffusers layout: write only unet/ (+ model_index.json)\n");
}

int main(int argc, char **argv) {
    const char *arch_name = NULL, *layout = "diffusers", *dtype = "f16", *out = NULL;
    uint64_t seed = 0;
    int unet_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--unet-only")) {
            unet_only = 1;
        } else if (v && !strcmp(a, "--arch")) {
            arch_name = v, i++;
        } else if (v && !strcmp(a, "--layout")) {
            layout = v, i++;
        } else if (v && !strcmp(a, "--dtype")) {
            dtype = v, i++;
        } else if (v && !strcmp(a, "--seed")) {
            seed = strtoull(v, NULL, 10), i++;
        } else if (v && !strcmp(a, "--out")) {
            out = v, i++;
        } else {
            fprintf(stderr, "df-make-model: error: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!arch_name || !out) {
        fprintf(stderr, "df-make-model: error: --arch and --out are required\n");
        usage(stderr);
        return 2;
    }
    const arch *A = NULL;
    for (size_t i = 0; i < sizeof k_arches / sizeof k_arches[0]; i++)
        if (!strcmp(k_arches[i].name, arch_name)) A = &k_arches[i];
    if (!A) {
        fprintf(stderr, "df-make-model: error: unknown --arch '%s' (sdxl, sd15, tiny-sdxl, tiny-sd15, demo-sdxl)\n",
                arch_name);
        return 2;
    }
    df_dtype dt;
    if (!strcmp(dtype, "f16")) dt = DF_DTYPE_F16;
    else if (!strcmp(dtype, "bf16")) dt = DF_DTYPE_BF16;
    else if (!strcmp(dtype, "f32")) dt = DF_DTYPE_F32;
    else {
        fprintf(stderr, "df-make-model: error: unknown --dtype '%s' (f16, bf16, f32)\n", dtype);
        return 2;
    }
    double t0 = df_time_s();
    df_status st;
    if (!strcmp(layout, "diffusers")) st = make_diffusers(out, A, dt, seed, unet_only);
    else if (!strcmp(layout, "single")) st = make_single(out, A, dt, seed);
    else {
        fprintf(stderr, "df-make-model: error: unknown --layout '%s' (diffusers, single)\n", layout);
        return 2;
    }
    if (st != DF_OK) {
        fprintf(stderr, "df-make-model: error: %s: %s\n", df_status_str(st), df_last_error());
        return 1;
    }
    fprintf(stderr, "df-make-model: wrote %s (%s, %s, %s) in %.1f s\n", out, A->name, layout,
            dtype, df_time_s() - t0);
    return 0;
}
