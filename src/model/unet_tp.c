// Tensor-parallel helpers of the UNet: shares, configuration check, communication volume, sliced
// weight cache and scratch. See unet_tp.h; the layers themselves are in unet_tp_layers.c.
#include "model/unet_tp.h"

#include "kernels/kernels.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_BUF 4

void df_tp_share(int n, int P, int r, int *a, int *b) {
    const int q = n / P, rem = n % P;
    *a = r * q + (r < rem ? r : rem);
    *b = *a + q + (r < rem ? 1 : 0);
}

// ---------------------------------------------------------------------------------------------
// Configuration check and volume

static void divisors(int n, char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = 0;
    for (int d = 1; d <= n && o + 12 < cap; d++)
        if (n % d == 0) o += (size_t)snprintf(buf + o, cap - o, "%s%d", o ? ", " : "", d);
}

df_status df_unet_tp_check(const df_unet_config *cfg, int P) {
    DF_FAIL_IF(P < 1, DF_ERR_ARG, "tensor parallelism: degree %d < 1", P);
    if (P == 1) return DF_OK;
    char ok[160];
    const int G = cfg->norm_groups;
    if (G % P != 0) {
        divisors(G, ok, sizeof ok);
        return DF_ERROR(DF_ERR_ARG,
                        "tensor parallelism of degree %d cannot split this UNet: every resnet's "
                        "norm2 GroupNorm (%d groups) becomes %d/%d groups per rank, and %d is not "
                        "divisible by %d. The degree is the number of ranks per CFG group (N/2 "
                        "with split batch, N with --no-split-batch); degrees that work: %s",
                        P, G, G, P, G, P, ok);
    }
    for (int i = 0; i < cfg->n_levels; i++) {
        const int C = cfg->block_out[i];
        if (C % P == 0) continue;
        divisors(C, ok, sizeof ok);
        return DF_ERROR(DF_ERR_ARG,
                        "tensor parallelism of degree %d cannot split this UNet: level %d has %d "
                        "channels (resnet conv1 outputs, conv2/sampler/conv_out inputs are split "
                        "into %d equal slices); degrees that work here: %s",
                        P, i, C, P, ok);
    }
    return DF_OK;
}

typedef struct vol {
    int n;
    double f;
} vol;

static void add(vol *v, double floats) {
    v->n++;
    v->f += floats;
}

static void trans(vol *v, int depth, double BT, int C) {
    for (int k = 0; k < depth; k++) {
        add(v, BT * C); // attn1 to_out
        add(v, BT * C); // attn2 to_out
        add(v, BT * C); // ff net.2
    }
}

void df_unet_tp_volume(const df_unet_config *c, int B, int H, int W, int *n_allreduce,
                       double *floats) {
    const int n = c->n_levels, L = c->layers_per_block;
    double T[DF_UNET_MAX_LEVELS];
    int h = H, w = W;
    for (int l = 0; l < n; l++) {
        T[l] = (double)B * h * w;
        h = (h + 1) / 2;
        w = (w + 1) / 2;
    }
    vol v = {0, 0};
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < L; j++) {
            add(&v, T[i] * c->block_out[i]); // resnet conv2
            if (c->down_attn[i]) trans(&v, c->tl_down[i][j], T[i], c->block_out[i]);
        }
        if (i < n - 1) add(&v, T[i + 1] * c->block_out[i]); // downsampler
    }
    if (c->mid_attn) {
        add(&v, T[n - 1] * c->block_out[n - 1]);
        trans(&v, c->tl_mid, T[n - 1], c->block_out[n - 1]);
        add(&v, T[n - 1] * c->block_out[n - 1]);
    }
    for (int i = 0; i < n; i++) {
        const int l = n - 1 - i, C = c->block_out[l];
        for (int j = 0; j <= L; j++) {
            add(&v, T[l] * C);
            if (c->up_attn[i]) trans(&v, c->tl_up[i][j], T[l], C);
        }
        if (i < n - 1) add(&v, T[l - 1] * C); // upsampler
    }
    add(&v, T[0] * c->out_channels); // conv_out
    *n_allreduce = v.n;
    *floats = v.f;
}

// ---------------------------------------------------------------------------------------------
// Sliced weight cache

typedef struct entry {
    const void *src; // stored tensor or source vector (NULL: empty slot)
    int kind;        // 0 linear, 1 conv, 2 vector
    int r[6];        // ranges
    float *f;        // cached f32 (owned)
} entry;

struct df_unet_tp {
    int rank, size;
    size_t limit, cached;
    entry *tab;
    size_t cap, used; // open addressing, cap a power of two
    float *scr[2];
    size_t scr_n[2];
    float *tmp; // conv sub-block before packing
    size_t tmp_n;
    float *buf[N_BUF];
    size_t buf_n[N_BUF];
    float dummy[16]; // result of empty slices
};

df_status df_unet_tp_create(int rank, int size, size_t limit_mb, df_unet_tp **out) {
    *out = NULL;
    DF_FAIL_IF(size < 1 || rank < 0 || rank >= size, DF_ERR_ARG,
               "tensor parallelism: bad rank %d of %d", rank, size);
    df_unet_tp *tp = calloc(1, sizeof *tp);
    DF_FAIL_IF(!tp, DF_ERR_NOMEM, "out of memory");
    tp->rank = rank;
    tp->size = size;
    tp->limit = limit_mb << 20;
    *out = tp;
    return DF_OK;
}

void df_unet_tp_destroy(df_unet_tp *tp) {
    if (!tp) return;
    for (size_t i = 0; i < tp->cap; i++) df_free(tp->tab[i].f);
    free(tp->tab);
    for (int i = 0; i < 2; i++) df_free(tp->scr[i]);
    df_free(tp->tmp);
    for (int i = 0; i < N_BUF; i++) df_free(tp->buf[i]);
    free(tp);
}

int df_unet_tp_rank(const df_unet_tp *tp) { return tp->rank; }
int df_unet_tp_size(const df_unet_tp *tp) { return tp->size; }
size_t df_unet_tp_cache_bytes(const df_unet_tp *tp) { return tp->cached; }

static size_t hash_key(const void *src, int kind, const int *r) {
    uint64_t h = (uint64_t)(uintptr_t)src * 0x9E3779B97F4A7C15ull ^ (uint64_t)kind;
    for (int i = 0; i < 6; i++) h = (h ^ (uint64_t)(uint32_t)r[i]) * 0x100000001B3ull;
    return (size_t)(h ^ (h >> 29));
}

static int same(const entry *e, const void *src, int kind, const int *r) {
    return e->src == src && e->kind == kind && memcmp(e->r, r, sizeof e->r) == 0;
}

static entry *lookup(df_unet_tp *tp, const void *src, int kind, const int *r) {
    if (!tp->cap) return NULL;
    for (size_t i = hash_key(src, kind, r) & (tp->cap - 1);; i = (i + 1) & (tp->cap - 1)) {
        entry *e = &tp->tab[i];
        if (!e->src) return NULL;
        if (same(e, src, kind, r)) return e;
    }
}

static df_status insert(df_unet_tp *tp, const void *src, int kind, const int *r, float *f) {
    if (2 * (tp->used + 1) > tp->cap) { // grow to keep the load under 1/2
        size_t ncap = tp->cap ? 2 * tp->cap : 256;
        entry *nt = calloc(ncap, sizeof *nt);
        DF_FAIL_IF(!nt, DF_ERR_NOMEM, "out of memory (tensor-parallel weight table)");
        for (size_t i = 0; i < tp->cap; i++) {
            entry *e = &tp->tab[i];
            if (!e->src) continue;
            size_t j = hash_key(e->src, e->kind, e->r) & (ncap - 1);
            while (nt[j].src) j = (j + 1) & (ncap - 1);
            nt[j] = *e;
        }
        free(tp->tab);
        tp->tab = nt;
        tp->cap = ncap;
    }
    size_t j = hash_key(src, kind, r) & (tp->cap - 1);
    while (tp->tab[j].src) j = (j + 1) & (tp->cap - 1);
    entry *e = &tp->tab[j];
    e->src = src;
    e->kind = kind;
    memcpy(e->r, r, sizeof e->r);
    e->f = f;
    tp->used++;
    return DF_OK;
}

static df_status grow(float **p, size_t *cap, size_t n) {
    if (n <= *cap) return DF_OK;
    float *q = df_malloc(n * sizeof(float));
    DF_FAIL_IF(!q, DF_ERR_NOMEM, "out of memory (%zu MB tensor-parallel scratch)",
               n * sizeof(float) >> 20);
    df_free(*p);
    *p = q;
    *cap = n;
    return DF_OK;
}

// Destination of a slice of n floats: a new cached block while within the limit, else scratch.
static df_status dest(df_unet_tp *tp, size_t n, int slot, const void *src, int kind,
                      const int *r, float **f, int *cache) {
    *cache = tp->cached + n * sizeof(float) <= tp->limit;
    if (*cache) {
        *f = df_malloc(n * sizeof(float));
        DF_FAIL_IF(!*f, DF_ERR_NOMEM, "out of memory (tensor-parallel weight cache)");
        df_status st = insert(tp, src, kind, r, *f);
        if (st != DF_OK) {
            df_free(*f);
            return st;
        }
        tp->cached += n * sizeof(float);
        return DF_OK;
    }
    DF_TRY(grow(&tp->scr[slot], &tp->scr_n[slot], n));
    *f = tp->scr[slot];
    return DF_OK;
}

// Rows [r0, r1) x columns [c0, c1) of the stored [out][in] matrix t -> dst [r1 - r0][c1 - c0].
static void convert_block(float *dst, const df_st_tensor *t, int in, int r0, int r1, int c0,
                          int c1) {
    const size_t es = df_dtype_size(t->dtype), w = (size_t)(c1 - c0);
    const unsigned char *base = t->data;
#pragma omp parallel for schedule(static) if ((size_t)(r1 - r0) * w > 65536)
    for (int r = r0; r < r1; r++)
        df_convert_to_f32(dst + (size_t)(r - r0) * w, base + ((size_t)r * in + c0) * es, t->dtype,
                          w);
}

static df_status check_tensor(const df_st_tensor *t, size_t numel, const char *what) {
    DF_FAIL_IF(!t, DF_ERR_INTERNAL, "tensor parallelism: missing %s weight", what);
    DF_FAIL_IF(t->numel != numel, DF_ERR_INTERNAL,
               "tensor parallelism: %s weight %s has %zu elements, expected %zu", what,
               t->name ? t->name : "?", t->numel, numel);
    return DF_OK;
}

df_status df_unet_tp_linear(df_unet_tp *tp, const df_st_tensor *t, int out, int in, int r0,
                            int r1, int r2, int r3, int c0, int c1, int slot, const float **w) {
    DF_TRY(check_tensor(t, (size_t)out * in, "linear"));
    DF_FAIL_IF(r0 < 0 || r1 < r0 || r1 > out || r2 < 0 || r3 < r2 || r3 > out || c0 < 0 ||
                   c1 < c0 || c1 > in || slot < 0 || slot > 1,
               DF_ERR_INTERNAL, "tensor parallelism: bad slice of %s", t->name);
    const size_t rows = (size_t)(r1 - r0) + (size_t)(r3 - r2), n = rows * (size_t)(c1 - c0);
    if (n == 0) {
        *w = tp->dummy;
        return DF_OK;
    }
    const int key[6] = {r0, r1, r2, r3, c0, c1};
    entry *e = lookup(tp, t, 0, key);
    if (e) {
        *w = e->f;
        return DF_OK;
    }
    float *f;
    int cached;
    DF_TRY(dest(tp, n, slot, t, 0, key, &f, &cached));
    convert_block(f, t, in, r0, r1, c0, c1);
    if (r3 > r2) convert_block(f + (size_t)(r1 - r0) * (c1 - c0), t, in, r2, r3, c0, c1);
    *w = f;
    return DF_OK;
}

df_status df_unet_tp_conv(df_unet_tp *tp, const df_st_tensor *t, int cout, int cin, int o0,
                          int o1, int i0, int i1, int slot, const float **w) {
    DF_TRY(check_tensor(t, (size_t)cout * cin * 9, "conv"));
    DF_FAIL_IF(o0 < 0 || o1 <= o0 || o1 > cout || i0 < 0 || i1 <= i0 || i1 > cin || slot < 0 ||
                   slot > 1,
               DF_ERR_INTERNAL, "tensor parallelism: bad slice of %s", t->name);
    const int key[6] = {o0, o1, i0, i1, 0, 0};
    entry *e = lookup(tp, t, 1, key);
    if (e) {
        *w = e->f;
        return DF_OK;
    }
    const int oc = o1 - o0, ic = i1 - i0;
    const size_t n = (size_t)oc * ic * 9;
    DF_TRY(grow(&tp->tmp, &tp->tmp_n, n));
    // [oc][ic][9] f32 sub-block: row o of the stored [cout][cin * 9] matrix, columns i0*9..i1*9
    convert_block(tp->tmp, t, cin * 9, o0, o1, i0 * 9, i1 * 9);
    float *f;
    int cached;
    DF_TRY(dest(tp, n, slot, t, 1, key, &f, &cached));
    df_conv_weight_pack(f, tp->tmp, DF_DTYPE_F32, oc, ic, 3);
    *w = f;
    return DF_OK;
}

df_status df_unet_tp_vec(df_unet_tp *tp, const float *v, int r0, int r1, int r2, int r3,
                         const float **out) {
    DF_FAIL_IF(r0 < 0 || r1 < r0 || r2 < 0 || r3 < r2, DF_ERR_INTERNAL,
               "tensor parallelism: bad vector slice");
    if (!v) {
        *out = NULL;
        return DF_OK;
    }
    const size_t n = (size_t)(r1 - r0) + (size_t)(r3 - r2);
    if (n == 0) {
        *out = tp->dummy;
        return DF_OK;
    }
    if (r3 == r2) { // one contiguous piece: no copy
        *out = v + r0;
        return DF_OK;
    }
    const int key[6] = {r0, r1, r2, r3, 0, 0};
    entry *e = lookup(tp, v, 2, key);
    if (!e) {
        float *f = df_malloc(n * sizeof(float));
        DF_FAIL_IF(!f, DF_ERR_NOMEM, "out of memory");
        memcpy(f, v + r0, (size_t)(r1 - r0) * sizeof(float));
        memcpy(f + (r1 - r0), v + r2, (size_t)(r3 - r2) * sizeof(float));
        df_status st = insert(tp, v, 2, key, f);
        if (st != DF_OK) {
            df_free(f);
            return st;
        }
        tp->cached += n * sizeof(float); // vectors are always kept (small)
        *out = f;
        return DF_OK;
    }
    *out = e->f;
    return DF_OK;
}

df_status df_unet_tp_buf(df_unet_tp *tp, int which, size_t floats, float **out) {
    DF_FAIL_IF(which < 0 || which >= N_BUF, DF_ERR_INTERNAL, "bad scratch index %d", which);
    DF_TRY(grow(&tp->buf[which], &tp->buf_n[which], floats ? floats : 1));
    *out = tp->buf[which];
    return DF_OK;
}

// ---------------------------------------------------------------------------------------------
// Elementwise helpers

void df_tp_slice_channels(float *dst, const float *x, size_t P, int C, int c0, int c1) {
    const size_t w = (size_t)(c1 - c0);
#pragma omp parallel for schedule(static) if (P * w > 65536)
    for (size_t p = 0; p < P; p++) memcpy(dst + p * w, x + p * C + c0, w * sizeof(float));
}

void df_tp_add_bias(float *y, const float *part, const float *b, size_t P, int C) {
#pragma omp parallel for schedule(static) if (P * C > 65536)
    for (size_t p = 0; p < P; p++) {
        float *row = y + p * C;
        const float *q = part ? part + p * C : NULL;
        if (q && b)
            for (int c = 0; c < C; c++) row[c] += q[c] + b[c];
        else if (q)
            for (int c = 0; c < C; c++) row[c] += q[c];
        else if (b)
            for (int c = 0; c < C; c++) row[c] += b[c];
    }
}

void df_tp_add_rows(float *y, const float *e, size_t P, int T, int C) {
#pragma omp parallel for schedule(static) if (P * C > 65536)
    for (size_t p = 0; p < P; p++) {
        const float *v = e + (p / T) * C;
        float *row = y + p * C;
        for (int c = 0; c < C; c++) row[c] += v[c];
    }
}
