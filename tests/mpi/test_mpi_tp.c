// Tensor parallelism (--parallelism tensor, spec §4.2) on the tiny SDXL test model (df-make-model,
// tests/make_test_models.sh; no golden data: seeded normal prompt embeddings and noise):
// a short DDIM loop (STEPS steps, guidance 5) through df_dist with the real UNet must equal the
// single-device loop (plain UNet, one process) within rel-L2 1e-5 (tensor parallelism is exact up
// to the float summation order), per CFG half of the first noise prediction and on the final
// latents; every rank must hold the same result; the all-reduce count and volume per step must
// equal df_unet_tp_volume.
//   N = 1 (plain process): unit checks (shares, degree check, SDXL volume = distrifuser's 232
//         all-reduces) and tensor parallelism with P = 1.
//   N = 2: split batch (P = 1: CFG data parallelism), no split (P = 2), and no split with a
//         1-head variant of the model (heads split 1/0: a rank without heads contributes zeros).
//   N = 4: no split (P = 4), split (P = 2 per CFG half, output exchanged in pairs), and no split
//         with a 2-head variant (heads split 1/1/0/0).
//   The head variants run without weight caches (df_unet_set_weight_cache 0), so the sliced
//   weights are converted on every use into the scratch slots, as for SDXL-sized models.
//   N = 3: no split (P = 3 does not divide the 32 GroupNorm groups): df_dist_unet_create fails
//         with DF_ERR_ARG and the same message on every rank, before any forward.
// Usage: [mpiexec -n N] test_mpi_tp [bad]
//   bad: tensor parallelism without split batch, setup only; exits 2 on every rank after printing
//        the setup error (tests.cmake runs it on 3 ranks under `timeout`: never a hang).
#include "tool_env.h"
#include "../df_test.h"
#include "io/safetensors.h"
#include "model/unet.h"
#include "model/unet_tp.h"
#include "model/weights.h"
#include "runtime/comm.h"
#include "runtime/dist.h"
#include "runtime/dist_unet.h"
#include "sched/sched.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { HL = 64, WL = 64, CL = 4, T_TXT = 77, D_TXT = 64, D_POOL = 32, STEPS = 3 };
#define NL ((size_t)HL * WL * CL)
static int g_N, g_R;
static char g_dir[4096];

typedef struct fixture {
    float enc[2 * T_TXT * D_TXT], pooled[2 * D_POOL], tids[2 * 6];
    float noise[NL]; // NHWC
    df_sched_config scfg;
} fixture;
static fixture g_fx;

// One UNet evaluation of both CFG images: x [2][H][W][C] -> eps [2][H][W][C].
typedef df_status (*eval_fn)(void *self, int step, const float *x, float t, float *eps);

// DDIM loop: final latents lat [NL] and the first noise prediction eps0 [2][NL].
static df_status run_loop(eval_fn ev, void *self, float *lat, float *eps0) {
    df_sched *s = NULL;
    float *xin = malloc(2 * NL * sizeof(float)), *eps = malloc(2 * NL * sizeof(float));
    float *g = malloc(NL * sizeof(float));
    df_status st = xin && eps && g ? DF_OK : DF_ERR_NOMEM;
    if (st == DF_OK) st = df_sched_create(DF_SCHED_DDIM, &g_fx.scfg, STEPS, NL, &s);
    if (st == DF_OK) {
        memcpy(lat, g_fx.noise, NL * sizeof(float));
        df_sched_init_latents(s, lat, NL);
    }
    for (int i = 0; i < STEPS && st == DF_OK; i++) {
        st = df_sched_scale_model_input(s, i, lat, xin, NL);
        if (st != DF_OK) break;
        memcpy(xin + NL, xin, NL * sizeof(float));
        st = ev(self, i, xin, df_sched_timestep(s, i), eps);
        if (st != DF_OK) break;
        if (i == 0) memcpy(eps0, eps, 2 * NL * sizeof(float));
        st = df_cfg_combine(g, eps, eps + NL, 1, NL, 5.0f, 0.0f);
        if (st == DF_OK) st = df_sched_step(s, i, g, lat, NL, NULL, NULL);
    }
    df_sched_destroy(s);
    free(xin), free(eps), free(g);
    return st;
}

// Single device: the plain UNet on both images.
static df_status single_eval(void *self, int step, const float *x, float t, float *eps) {
    df_unet *u = self;
    df_pctx ctx;
    df_pctx_single_init(&ctx, HL);
    const float tt[2] = {t, t};
    return df_unet_forward(u, &ctx, x, tt, eps);
}

static df_status run_single(df_unet *u, float *lat, float *eps0) {
    DF_TRY(df_unet_plan(u, 2, HL, WL, HL));
    DF_TRY(df_unet_set_text(u, 2, g_fx.enc, T_TXT, g_fx.pooled, g_fx.tids));
    return run_loop(single_eval, u, lat, eps0);
}

typedef struct dist_run {
    df_dist *d;
    df_dist_unet *du;
    df_dist_step_stats first; // stats of step 0
} dist_run;

static df_status dist_eval(void *self, int step, const float *x, float t, float *eps) {
    dist_run *r = self;
    DF_TRY(df_dist_eval(r->d, df_dist_unet_model(r->du), step, x, HL, WL, t, eps));
    if (step == 0) df_dist_last_stats(r->d, &r->first);
    return DF_OK;
}

static df_status setup_dist(df_unet *u, int split, dist_run *r) {
    memset(r, 0, sizeof *r);
    df_dist_params p = df_dist_params_default();
    p.parallelism = DF_PAR_TENSOR;
    p.split_batch = split;
    DF_TRY(df_dist_create(&p, &r->d));
    return df_dist_unet_create(r->d, u, HL, WL, g_fx.enc, T_TXT, g_fx.pooled, g_fx.tids, &r->du);
}

static void free_dist(dist_run *r) {
    df_dist_unet_destroy(r->du);
    df_dist_destroy(r->d);
    memset(r, 0, sizeof *r);
}

static void check_rel(const char *label, const float *got, const float *want, size_t n) {
    double e = df_rel_l2(got, want, n);
    df_test_checks++;
    int ok = e <= 1e-5;
    if (!ok) df_test_failures++;
    if (g_R == 0 || !ok)
        fprintf(stderr, "  [r%d] %-46s rel-L2 %.3e%s\n", g_R, label, e, ok ? "" : "  FAIL");
}

// Runs tensor parallelism on `u` and compares with the single-device results of the same model.
static void run_case(const char *name, df_unet *u, int split, const float *lat_ref,
                     const float *eps_ref) {
    float *lat = malloc(NL * sizeof(float)), *eps0 = malloc(2 * NL * sizeof(float));
    float *lat0 = malloc(NL * sizeof(float));
    dist_run r;
    double t0 = df_time_s();
    df_status st = setup_dist(u, split, &r);
    if (st == DF_OK) st = run_loop(dist_eval, &r, lat, eps0);
    EXPECT_OK(st);
    if (st != DF_OK) {
        fprintf(stderr, "rank %d: %s: %s\n", g_R, name, df_last_error());
        df_dist_abort(1);
    }
    const df_topo *tp = df_dist_topo(r.d);
    char label[160];
    if (g_R == 0)
        fprintf(stderr, "%s: N=%d P=%d B/rank=%d, %d steps in %.2f s\n", name, g_N, tp->P, tp->B,
                STEPS, df_time_s() - t0);
    snprintf(label, sizeof label, "%s: eps uncond (step 0)", name);
    check_rel(label, eps0, eps_ref, NL);
    snprintf(label, sizeof label, "%s: eps cond (step 0)", name);
    check_rel(label, eps0 + NL, eps_ref + NL, NL);
    snprintf(label, sizeof label, "%s: final latents", name);
    check_rel(label, lat, lat_ref, NL);
    // every rank ends with rank 0's latents, bit for bit
    memcpy(lat0, lat, NL * sizeof(float));
    EXPECT_OK(df_comm_bcast(df_dist_world(r.d), lat0, NL * sizeof(float), 0));
    EXPECT_TRUE(memcmp(lat0, lat, NL * sizeof(float)) == 0);
    // all-reduces of step 0: count and logical bytes from the model's volume
    int n_ar = 0;
    double floats = 0;
    if (tp->P > 1) df_unet_tp_volume(df_unet_get_config(u), tp->B, HL, WL, &n_ar, &floats);
    const uint64_t bytes = (uint64_t)(floats * 4) * 2 * (uint64_t)(tp->P - 1) / (uint64_t)tp->P;
    EXPECT_EQ_I64(r.first.n_collectives, n_ar);
    EXPECT_TRUE(r.first.bytes_sent >= bytes - (uint64_t)n_ar && r.first.bytes_sent <= bytes);
    if (g_R == 0)
        fprintf(stderr, "  %d all-reduces, %.0f floats, %.3f MB sent per rank per step; output "
                        "gather %.3f MB\n", r.first.n_collectives, floats,
                r.first.bytes_sent / 1e6, r.first.bytes_gather / 1e6);
    free_dist(&r);
    free(lat), free(eps0), free(lat0);
}

// The tiny SDXL UNet with every transformer's head count set to `heads` (shapes unchanged).
static df_status load_heads_variant(int heads, df_unet **out) {
    char path[4200];
    df_unet_config cfg;
    snprintf(path, sizeof path, "%s/tiny-sdxl/unet/config.json", g_dir);
    DF_TRY(df_unet_config_from_json(path, &cfg));
    for (int i = 0; i < cfg.n_levels; i++) cfg.heads_down[i] = cfg.heads_up[i] = heads;
    cfg.heads_mid = heads;
    df_weights *w = NULL;
    snprintf(path, sizeof path, "%s/tiny-sdxl", g_dir);
    DF_TRY(df_weights_open_dir(path, "unet", &w));
    DF_TRY(df_unet_create(&cfg, w, out));
    return df_unet_set_weight_cache(*out, 0); // no weight caches
}

static void unit_checks(const df_unet *u) {
    int a, b, prev = 0, tot = 0;
    for (int r = 0; r < 3; r++) { // 4 heads over 3 ranks: 2, 1, 1
        df_tp_share(4, 3, r, &a, &b);
        EXPECT_EQ_I64(a, prev);
        EXPECT_EQ_I64(b - a, r == 0 ? 2 : 1);
        prev = b;
        tot += b - a;
    }
    EXPECT_EQ_I64(tot, 4);
    df_tp_share(2, 4, 3, &a, &b); // fewer heads than ranks: rank 3 gets none
    EXPECT_EQ_I64(b - a, 0);
    const df_unet_config *c = df_unet_get_config(u);
    EXPECT_OK(df_unet_tp_check(c, 1));
    EXPECT_OK(df_unet_tp_check(c, 2));
    EXPECT_OK(df_unet_tp_check(c, 4));
    EXPECT_TRUE(df_unet_tp_check(c, 3) == DF_ERR_ARG &&
                strstr(df_last_error(), "32 is not divisible by 3"));
    df_clear_error();
    // SDXL (spec §4.2): 140 attention + 70 FF + 17 resnets + 5 convs = 232 all-reduces
    df_unet_config x;
    memset(&x, 0, sizeof x);
    x.n_levels = 3;
    x.layers_per_block = 2;
    x.out_channels = 4;
    x.mid_attn = 1;
    x.tl_mid = 10;
    const int bo[3] = {320, 640, 1280}, tl[3] = {0, 2, 10};
    for (int i = 0; i < 3; i++) {
        x.block_out[i] = bo[i];
        x.down_attn[i] = i > 0;
        x.up_attn[i] = i < 2;
        for (int j = 0; j < 3; j++) {
            x.tl_down[i][j] = tl[i];
            x.tl_up[i][j] = tl[2 - i];
        }
    }
    int n_ar = 0;
    double fl = 0;
    df_unet_tp_volume(&x, 2, 128, 128, &n_ar, &fl);
    EXPECT_EQ_I64(n_ar, 232);
    // the paper's Table 2 "Comm." of Sync. TP (8 devices, no split, B=2; elements per device per
    // step of a ring all-reduce, spec §3.6): 1.33G at 1024^2, 5.33G at 2048^2
    const double c1 = 2.0 * 7 / 8 * fl;
    EXPECT_TRUE(c1 > 1.325e9 && c1 < 1.335e9);
    fprintf(stderr, "SDXL 1024^2, B=2: %d all-reduces, %.1f M floats per step; P=8 ring: %.3f G "
                    "elements per device\n", n_ar, fl / 1e6, c1 / 1e9);
    df_unet_tp_volume(&x, 2, 256, 256, &n_ar, &fl);
    EXPECT_TRUE(2.0 * 7 / 8 * fl > 5.325e9 && 2.0 * 7 / 8 * fl < 5.335e9);
}

// Seeded standard normal values (Box-Muller over a 64-bit LCG), scaled.
static void fill_normal(float *x, size_t n, uint64_t seed, float scale) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        z = z * 6364136223846793005ull + 1442695040888963407ull;
        double u1 = ((double)(z >> 11) + 1.0) / 9007199254740993.0;
        z = z * 6364136223846793005ull + 1442695040888963407ull;
        double u2 = (double)(z >> 11) / 9007199254740992.0;
        x[i] = scale * (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
}

static int load_fixture(df_unet **u) {
    char path[4600];
    snprintf(path, sizeof path, "%s/tiny-sdxl", g_dir);
    if (df_unet_load(path, NULL, u) != DF_OK) return 0;
    // text conditioning [uncond, cond] and pooled embeddings: seeded normals (like CLIP
    // hidden states, std about 1)
    fill_normal(g_fx.enc, 2 * (size_t)T_TXT * D_TXT, 1, 1.0f);
    fill_normal(g_fx.pooled, 2 * (size_t)D_POOL, 2, 1.0f);
    const float ids[6] = {512, 512, 0, 0, 512, 512};
    memcpy(g_fx.tids, ids, sizeof ids);
    memcpy(g_fx.tids + 6, ids, sizeof ids);
    snprintf(path, sizeof path, "%s/tiny-sdxl/scheduler/scheduler_config.json", g_dir);
    EXPECT_OK(df_sched_config_load_json(path, &g_fx.scfg, NULL));
    fill_normal(g_fx.noise, NL, 3, 1.0f); // NHWC [64][64][4]
    return df_test_failures == 0;
}

int main(int argc, char **argv) {
    if (df_dist_init(&argc, &argv, 0, df_tool_launched_by_mpi()) != DF_OK) {
        fprintf(stderr, "init: %s\n", df_last_error());
        return 1;
    }
    df_set_threads(1);
    g_N = df_mpi_world_size();
    g_R = df_mpi_world_rank();
    const char *md = df_test_models_dir();
    if (!md) {
        df_dist_finalize();
        return 1;
    }
    snprintf(g_dir, sizeof g_dir, "%s", md);
    df_unet *u = NULL;
    if (!load_fixture(&u)) {
        fprintf(stderr, "rank %d: cannot load the fixture: %s\n", g_R, df_last_error());
        df_dist_abort(1);
        return 1;
    }
    if (argc > 1 && strcmp(argv[1], "bad") == 0) { // setup error protocol of a main()
        dist_run r;
        df_status st = setup_dist(u, 0, &r);
        free_dist(&r);
        df_unet_destroy(u);
        if (st != DF_OK) {
            fprintf(stderr, "rank %d: setup failed: %s\n", g_R, df_last_error());
            df_dist_finalize();
            return 2;
        }
        fprintf(stderr, "rank %d: setup unexpectedly succeeded\n", g_R);
        df_dist_finalize();
        return 0;
    }

    float *lat_ref = malloc(NL * sizeof(float)), *eps_ref = malloc(2 * NL * sizeof(float));
    if (g_N == 3) {
        dist_run r;
        df_status st = setup_dist(u, 0, &r);
        EXPECT_TRUE(st == DF_ERR_ARG);
        EXPECT_TRUE(strstr(df_last_error(), "tensor parallelism of degree 3") != NULL);
        if (g_R == 0) fprintf(stderr, "N=3 no split: %s\n", df_last_error());
        free_dist(&r);
    } else {
        if (g_N == 1) unit_checks(u);
        EXPECT_OK(run_single(u, lat_ref, eps_ref));
        if (g_N == 1) run_case("tensor (P=1)", u, 1, lat_ref, eps_ref);
        if (g_N >= 2) {
            run_case("tensor no-split", u, 0, lat_ref, eps_ref);
            run_case("tensor split", u, 1, lat_ref, eps_ref);
            // uneven heads: 1 head per transformer (N=2) or 2 (N=4); no weight caches (the
            // UNet converts per use, the sliced weights go through the scratch slots as for SDXL)
            df_unet *v = NULL;
            EXPECT_OK(load_heads_variant(g_N == 2 ? 1 : 2, &v));
            if (v) {
                EXPECT_OK(run_single(v, lat_ref, eps_ref));
                run_case(g_N == 2 ? "tensor no-split, 1 head, uncached"
                                  : "tensor no-split, 2 heads, uncached",
                         v, 0, lat_ref, eps_ref);
            }
            df_unet_destroy(v);
        }
    }
    free(lat_ref), free(eps_ref);
    df_unet_destroy(u);
    // one verdict for all ranks
    df_comm *w = NULL;
    int fails = df_test_failures;
    if (df_comm_world(&w) == DF_OK) {
        df_comm_allreduce_max_i32(w, &fails, 1);
        df_comm_destroy(w);
    }
    if (fails && !df_test_failures) df_test_failures = 1;
    int rc = df_test_result();
    df_dist_finalize();
    return rc;
}
