// Patch parallelism on the synthetic model (tests/mpi/synth.h), run with mpiexec -n 1..4:
//  A. every synchronous configuration (full_sync, and every mode with warm-up >= steps) equals the
//     single-rank model (rel-L2 <= 1e-5), with and without split batch;
//  B. asynchronous steps: every layer reads exactly the other bands' data of the previous step
//     (trace of hashes of the bytes sent / read), whatever comm_checkpoint (1, 3, 60 > number of
//     registered tensors); results are bit-identical across checkpoints; the bytes exchanged per
//     asynchronous step equal the planned volume (P-1) x slot;
//  C. f16 exchange is close to f32 and halves the activation bytes;
//  D. shape validation names the working resolutions; E. the plan has the expected entries;
//  F. conv halos go to the two neighbours only: the halo bytes of an asynchronous step equal the
//     analytic two-neighbour volume, the bytes by kind sum to the total, and the results are
//     bit-identical to the all-gather halo path (halo_allgather = 1).
//  G. band weights: explicit weights give the planned rows per rank and a synchronous run equal
//     to the single rank; `auto` with patch 0 three times slower than the others (every band
//     sleeps per row in every forward) re-plans right after step 0 to the rows of the weights
//     1 : 3 : 3 ... (within one row), step 1 runs synchronously (the new plan's planning
//     forward), the steps after the warm-up asynchronously; synchronous runs with auto
//     (full_sync, warm-up >= steps) equal the single rank.
//  H. naive patch (row, col, alternate) with the same band rule: every band's output equals the
//     model run on that sub-image alone.
// Argument: the latent height (default 24; 22 gives uneven bands: 11 deepest-level rows).
#include "tool_env.h"
#include "synth.h"

#include "../df_test.h"
#include "runtime/bands.h"
#include "runtime/comm.h"
#include "runtime/dist.h"

#include <stdio.h>
#include <time.h>

enum { W_LAT = 16, CH = 4 };
static int H_LAT = 24;
static int g_N, g_R;

static void make_noise(float *x, size_t n, uint32_t seed) {
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) * (1.0 / 8388608.0)) * 2.0f - 1.0f;
    }
}

// A fake sampler: x <- x - 0.1 eps, timestep 1000 - 100 s. eps_all: [steps][2][H][W][4].
static df_status run_dist(df_dist *d, df_dist_model *m, int steps, float *x, float *eps_all) {
    size_t n = (size_t)2 * H_LAT * W_LAT * CH;
    for (int s = 0; s < steps; s++) {
        float *eps = eps_all + (size_t)s * n;
        DF_TRY(df_dist_eval(d, m, s, x, H_LAT, W_LAT, 1000.0f - 100.0f * s, eps));
        for (size_t i = 0; i < n; i++) x[i] -= 0.1f * eps[i];
    }
    return DF_OK;
}

static df_status run_ref(df_dist_model *m, int steps, float *x, float *eps_all) {
    size_t n = (size_t)2 * H_LAT * W_LAT * CH;
    int images[2] = {0, 1};
    for (int s = 0; s < steps; s++) {
        df_pctx ctx;
        df_pctx_single_init(&ctx, H_LAT);
        float *eps = eps_all + (size_t)s * n;
        DF_TRY(m->forward(m->self, &ctx, x, 2, images, H_LAT, W_LAT, 1000.0f - 100.0f * s, eps));
        for (size_t i = 0; i < n; i++) x[i] -= 0.1f * eps[i];
    }
    return DF_OK;
}

// The synthetic model on ranks of known speed: every band sleeps SLOW_NS per latent row of its
// band in every forward (dominating the model's own compute and oversubscribed noise), patch 0
// (the band starting at row 0) SLOW_FACTOR times as long: its speed is 1/SLOW_FACTOR of the
// others'.
enum { SLOW_FACTOR = 3 };
static const long SLOW_NS = 8000000L;
static df_dist_model g_inner;
static df_status slow_forward(void *self, df_pctx *ctx, const float *x, int B, const int *images,
                              int H, int W, float t, float *y) {
    if (ctx->row1 - ctx->row0 < ctx->H_full) {
        long ns = SLOW_NS * (ctx->row1 - ctx->row0) * (ctx->row0 == 0 ? SLOW_FACTOR : 1);
        struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
        nanosleep(&ts, NULL);
    }
    return g_inner.forward(self, ctx, x, B, images, H, W, t, y);
}

static const char *cfg_name(const df_dist_params *p, char *buf, size_t cap) {
    snprintf(buf, cap, "N%d %s %s w%d ckpt%d %s", g_N, p->split_batch ? "split" : "nosplit",
             df_sync_mode_name(p->sync_mode), p->warmup_steps, p->comm_checkpoint,
             df_comm_dtype_name(p->comm_dtype));
    return buf;
}

// B: staleness check from the trace. Returns the number of verified reads.
static int check_trace(df_dist *d, const df_dist_params *p, int steps) {
    const df_topo *tp = df_dist_topo(d);
    int P = tp->P, ne = df_dist_comm_tensors(d);
    size_t ns = (size_t)steps * ne, nr = ns * P;
    uint64_t *sent = calloc(2 * ns * g_N, 8), *rd = calloc(nr * g_N, 8);
    EXPECT_OK(df_comm_allgather(df_dist_world(d), df_dist_trace_sent(d), sent, 2 * ns * 8));
    EXPECT_OK(df_comm_allgather(df_dist_world(d), df_dist_trace_read(d), rd, nr * 8));
    int verified = 0, bad = 0, missing = 0;
    const uint64_t *my = rd + (size_t)g_R * nr;
    for (int s = 1; s < steps; s++) {
        int sync = s <= p->warmup_steps || p->sync_mode == DF_SYNC_FULL_SYNC;
        // which step's data must be read
        int src = sync ? s : (p->sync_mode == DF_SYNC_NO_SYNC ? p->warmup_steps : s - 1);
        for (int e = 0; e < ne; e++) {
            for (int j = 0; j < P; j++) {
                uint64_t got = my[((size_t)s * ne + e) * P + j];
                if (!got) {
                    // attention reads every other band; halos read the neighbours
                    if (j != tp->patch && (j == tp->patch - 1 || j == tp->patch + 1)) missing++;
                    continue;
                }
                int wr = tp->group * P + j; // world rank of patch j in this group
                // the part j published for this band: its bottom rows if j is above, its top
                // rows if below (halos; other entries publish one slot)
                int part = j < tp->patch ? 1 : 0;
                uint64_t want = sent[2 * ((size_t)wr * ns + (size_t)src * ne + e) + part];
                if (got != want) {
                    if (bad < 5)
                        fprintf(stderr, "  rank %d step %d entry %d slot %d: read data of the "
                                        "wrong step\n",
                                g_R, s, e, j);
                    bad++;
                } else {
                    verified++;
                }
            }
        }
    }
    df_test_checks++;
    if (bad || missing) {
        fprintf(stderr, "  trace: %d stale-data mismatches, %d missing reads\n", bad, missing);
        df_test_failures++;
    }
    free(sent);
    free(rd);
    return verified;
}

static void expected_plan(const df_topo *tp, df_sync_mode m, int *count, size_t *elems) {
    int P = tp->P, B = tp->B, D = H_LAT / 2, dmax = (D + P - 1) / P; // largest band
    size_t conv = (size_t)2 * B * W_LAT * (SY_C0 + SY_C0 + SY_C1 + SY_C0);
    size_t attn = (size_t)2 * B * dmax * (W_LAT / 2) * SY_C1; // padded to the largest band
    size_t gn = (size_t)3 * 2 * B * SY_G;
    int reg_gn = m == DF_SYNC_CORRECTED_ASYNC_GN || m == DF_SYNC_STALE_GN;
    *count = 4 + 1 + (reg_gn ? 3 : 0);
    *elems = conv + attn + (reg_gn ? gn : 0);
}

int main(int argc, char **argv) {
    // MPI_THREAD_MULTIPLE for progress=thread
    if (df_dist_init(&argc, &argv, 1, df_tool_launched_by_mpi()) != DF_OK) {
        fprintf(stderr, "init: %s\n", df_last_error());
        return 1;
    }
    df_set_threads(1);
    if (argc > 1) H_LAT = atoi(argv[1]);
    g_N = df_mpi_world_size();
    g_R = df_mpi_world_rank();
    synth sm;
    synth_init(&sm);
    df_dist_model m = synth_model(&sm);

    const int steps = 6;
    size_t n = (size_t)2 * H_LAT * W_LAT * CH;
    float *x0 = malloc(n * sizeof(float)), *x = malloc(n * sizeof(float));
    float *xr = malloc(n * sizeof(float));
    float *eps = malloc(steps * n * sizeof(float)), *eref = malloc(steps * n * sizeof(float));
    float *xckpt = malloc(n * sizeof(float)), *xf32 = malloc(n * sizeof(float));
    make_noise(x0, n, 7u);
    memcpy(xr, x0, n * sizeof(float));
    EXPECT_OK(run_ref(&m, steps, xr, eref));
    char name[160];

    // ---- A: synchronous configurations equal the single-rank model
    for (int split = 1; split >= 0; split--) {
        for (int mi = 0; mi < DF_SYNC_COUNT; mi++) {
            df_dist_params p = df_dist_params_default();
            p.split_batch = split;
            p.sync_mode = (df_sync_mode)mi;
            p.warmup_steps = mi == DF_SYNC_FULL_SYNC ? 0 : steps;
            p.comm_checkpoint = 3;
            df_dist *d = NULL;
            df_status st = df_dist_create(&p, &d);
            EXPECT_OK(st);
            if (st == DF_OK && split && g_N % 2 == 1 && g_N > 1) // odd N: no split batch
                EXPECT_TRUE(df_dist_topo(d)->split_fallback && df_dist_topo(d)->P == g_N);
            if (st != DF_OK) continue;
            memcpy(x, x0, n * sizeof(float));
            EXPECT_OK(run_dist(d, &m, steps, x, eps));
            cfg_name(&p, name, sizeof name);
            if (g_R == 0) fprintf(stderr, "[A] %s\n", name);
            EXPECT_REL_L2(eps, eref, steps * n, 1e-5, "  eps, all steps");
            EXPECT_REL_L2(x, xr, n, 1e-5, "  final latent");
            const df_topo *tp = df_dist_topo(d);
            if (tp->P > 1) {
                int cnt;
                size_t el;
                expected_plan(tp, p.sync_mode, &cnt, &el);
                EXPECT_EQ_I64(df_dist_comm_tensors(d), cnt);
                EXPECT_EQ_I64((int64_t)df_dist_comm_slot_elems(d), (int64_t)el);
            }
            df_dist_destroy(d);
        }
    }

    // ---- B: asynchronous steps
    for (int mi = 0; mi < DF_SYNC_COUNT; mi++) {
        if (mi == DF_SYNC_FULL_SYNC) continue;
        const int ckpts[3] = {1, 3, 60};
        for (int split = 1; split >= 0; split--) {
            if (split && g_N % 2 == 1) continue;
            for (int c = 0; c < 3; c++) {
                df_dist_params p = df_dist_params_default();
                p.split_batch = split;
                p.sync_mode = (df_sync_mode)mi;
                p.warmup_steps = 1;
                p.comm_checkpoint = ckpts[c];
                df_dist *d = NULL;
                EXPECT_OK(df_dist_create(&p, &d));
                if (!d) continue;
                EXPECT_OK(df_dist_trace_enable(d, steps));
                memcpy(x, x0, n * sizeof(float));
                // step by step, checking the bytes of every asynchronous step
                int bytes_ok = 1;
                for (int s = 0; s < steps; s++) {
                    float *e = eps + (size_t)s * n;
                    EXPECT_OK(df_dist_eval(d, &m, s, x, H_LAT, W_LAT, 1000.0f - 100.0f * s, e));
                    for (size_t i = 0; i < n; i++) x[i] -= 0.1f * e[i];
                    df_dist_step_stats ss;
                    df_dist_last_stats(d, &ss);
                    if (ss.bytes_halo + ss.bytes_kv + ss.bytes_gn + ss.bytes_tp !=
                        ss.bytes_sent + ss.bytes_recv) {
                        fprintf(stderr, "  step %d: bytes by kind do not sum to the total\n", s);
                        bytes_ok = 0;
                    }
                    const df_topo *tq = df_dist_topo(d);
                    if (s > p.warmup_steps && tq->P > 1 && p.sync_mode != DF_SYNC_NO_SYNC) {
                        // two-neighbour volume: each conv (not conv_in) sends 1 row x W x C per
                        // image to each neighbour and receives as much
                        int nb = (tq->patch > 0) + (tq->patch < tq->P - 1);
                        uint64_t halo = (uint64_t)2 * nb * tq->B * W_LAT *
                                        (SY_C0 + SY_C0 + SY_C1 + SY_C0) * 4;
                        if (ss.bytes_halo != halo) {
                            fprintf(stderr, "  step %d: halo bytes %llu, analytic %llu\n", s,
                                    (unsigned long long)ss.bytes_halo,
                                    (unsigned long long)halo);
                            bytes_ok = 0;
                        }
                    }
                    if (s > p.warmup_steps && df_dist_topo(d)->P > 1) {
                        uint64_t want = df_dist_async_step_bytes(d);
                        if (p.sync_mode == DF_SYNC_SYNC_GN) {
                            if (ss.bytes_recv <= want) bytes_ok = 0; // plus the GN all-reduces
                        } else if (ss.bytes_recv != want || ss.bytes_sent != want) {
                            fprintf(stderr, "  step %d: %llu bytes received, planned %llu\n", s,
                                    (unsigned long long)ss.bytes_recv,
                                    (unsigned long long)want);
                            bytes_ok = 0;
                        }
                        if (p.sync_mode == DF_SYNC_NO_SYNC && ss.bytes_recv != 0) bytes_ok = 0;
                    }
                }
                EXPECT_TRUE(bytes_ok);
                cfg_name(&p, name, sizeof name);
                if (df_dist_topo(d)->P > 1) {
                    int v = check_trace(d, &p, steps);
                    if (g_R == 0)
                        fprintf(stderr, "[B] %s: %d reads verified one step old, rel-L2 vs "
                                        "single rank %.3e, async step %llu bytes\n",
                                name, v, df_rel_l2(x, xr, n),
                                (unsigned long long)df_dist_async_step_bytes(d));
                    EXPECT_TRUE(v > 0);
                    if (mi != DF_SYNC_SYNC_GN && mi != DF_SYNC_NO_SYNC)
                        EXPECT_TRUE(df_rel_l2(x, xr, n) > 0); // really asynchronous
                }
                if (c == 0) memcpy(xckpt, x, n * sizeof(float));
                else EXPECT_TRUE(memcmp(xckpt, x, n * sizeof(float)) == 0); // bit-identical
                if (mi == DF_SYNC_CORRECTED_ASYNC_GN && c == 0) memcpy(xf32, x, n * sizeof(float));
                df_dist_destroy(d);
            }
            // ---- progress strategies change timing only: bit-identical results
            if (mi == DF_SYNC_CORRECTED_ASYNC_GN) {
                for (int pg = 0; pg < DF_PROGRESS_COUNT; pg++) {
                    if (pg == DF_PROGRESS_TEST) continue;
                    if (pg == DF_PROGRESS_THREAD && df_mpi_active() && !df_mpi_thread_multiple())
                        continue;
                    df_dist_params p = df_dist_params_default();
                    p.split_batch = split;
                    p.warmup_steps = 1;
                    p.comm_checkpoint = 3;
                    p.progress = (df_progress)pg;
                    df_dist *d = NULL;
                    EXPECT_OK(df_dist_create(&p, &d));
                    if (!d) continue;
                    memcpy(x, x0, n * sizeof(float));
                    EXPECT_OK(run_dist(d, &m, steps, x, eps));
                    EXPECT_TRUE(memcmp(xf32, x, n * sizeof(float)) == 0);
                    if (g_R == 0)
                        fprintf(stderr, "[B] progress=%s: %s\n", df_progress_name(p.progress),
                                memcmp(xf32, x, n * sizeof(float)) ? "DIFFERENT" : "identical");
                    df_dist_destroy(d);
                }
            }
            // ---- F: the all-gather halo path gives bit-identical results, with (P-1)x the
            // halo bytes of the neighbour path at P >= 3 (equal at P = 2)
            if (mi == DF_SYNC_CORRECTED_ASYNC_GN) {
                df_dist_params p = df_dist_params_default();
                p.split_batch = split;
                p.warmup_steps = 1;
                p.comm_checkpoint = 1;
                p.halo_allgather = 1;
                df_dist *d = NULL;
                EXPECT_OK(df_dist_create(&p, &d));
                if (d) {
                    memcpy(x, x0, n * sizeof(float));
                    EXPECT_OK(run_dist(d, &m, steps, x, eps));
                    int same = memcmp(xf32, x, n * sizeof(float)) == 0;
                    EXPECT_TRUE(same);
                    df_dist_step_stats ss;
                    df_dist_last_stats(d, &ss);
                    const df_topo *tq = df_dist_topo(d);
                    uint64_t halo = (uint64_t)2 * (tq->P - 1) * 2 * tq->B * W_LAT *
                                    (SY_C0 + SY_C0 + SY_C1 + SY_C0) * 4;
                    if (tq->P > 1) EXPECT_EQ_I64((int64_t)ss.bytes_halo, (int64_t)halo);
                    if (g_R == 0)
                        fprintf(stderr, "[F] halos in the all-gather vs neighbours only: %s, "
                                        "halo bytes/step %llu\n",
                                same ? "identical" : "DIFFERENT",
                                (unsigned long long)ss.bytes_halo);
                    df_dist_destroy(d);
                }
            }
            // ---- C: f16 exchange
            if (mi == DF_SYNC_CORRECTED_ASYNC_GN) {
                df_dist_params p = df_dist_params_default();
                p.split_batch = split;
                p.warmup_steps = 1;
                p.comm_checkpoint = 1;
                p.comm_dtype = DF_COMM_F16;
                df_dist *d = NULL;
                EXPECT_OK(df_dist_create(&p, &d));
                memcpy(x, x0, n * sizeof(float));
                EXPECT_OK(run_dist(d, &m, steps, x, eps));
                double r = df_rel_l2(x, xf32, n);
                if (g_R == 0) fprintf(stderr, "[C] f16 vs f32 exchange: rel-L2 %.3e\n", r);
                EXPECT_LE_F64(r, 1e-2);
                if (df_dist_topo(d)->P > 1) {
                    int cnt;
                    size_t el;
                    expected_plan(df_dist_topo(d), p.sync_mode, &cnt, &el);
                    size_t gn_bytes = (size_t)3 * 2 * df_dist_topo(d)->B * SY_G * 8;
                    EXPECT_EQ_I64((int64_t)df_dist_comm_slot_bytes(d),
                                  (int64_t)((el - gn_bytes / 8) * 2 + gn_bytes));
                }
                df_dist_destroy(d);
            }
        }
    }

    // ---- G: band weights
    if (g_N > 1) {
        for (int split = 1; split >= 0; split--) {
            df_dist_params p = df_dist_params_default();
            p.split_batch = split;
            p.sync_mode = DF_SYNC_FULL_SYNC;
            df_dist *d = NULL;
            EXPECT_OK(df_dist_create(&p, &d));
            int P = d ? df_dist_topo(d)->P : 1;
            df_dist_destroy(d);
            d = NULL;
            if (P < 2) continue;
            // explicit: weights 1, 2, 3, ... -> rows by the band rule
            p.n_band_weights = P;
            for (int i = 0; i < P; i++) p.band_weights[i] = i + 1;
            EXPECT_OK(df_dist_create(&p, &d));
            memcpy(x, x0, n * sizeof(float));
            EXPECT_OK(run_dist(d, &m, steps, x, eps));
            EXPECT_REL_L2(x, xr, n, 1e-5, "  [G] weighted bands, full_sync vs single rank");
            int got[64], want[64];
            EXPECT_EQ_I64(df_dist_bands(d, got), P);
            EXPECT_OK(df_bands_rows(H_LAT / 2, P, p.band_weights, want));
            EXPECT_TRUE(memcmp(got, want, (size_t)P * sizeof(int)) == 0);
            char plan[256];
            df_dist_band_plan_str(d, plan, sizeof plan);
            if (g_R == 0) fprintf(stderr, "[G] weights 1..%d: %s\n", P, plan);
            df_dist_destroy(d);
            // wrong count
            p.n_band_weights = P + 1;
            p.band_weights[P] = 1;
            EXPECT_ERR(df_dist_create(&p, &d), DF_ERR_ARG, "weights");
            // auto, patch 0 SLOW_FACTOR times slower than the others: the bands re-planned
            // right after step 0 follow the measured speeds (the plan of the weights 1 : F : F
            // ..., within one row for the timing noise of oversubscribed ranks)
            df_dist_model slow = m;
            g_inner = m;
            slow.forward = slow_forward;
            double sw[64];
            for (int i = 0; i < P; i++) sw[i] = i == 0 ? 1.0 : (double)SLOW_FACTOR;
            EXPECT_OK(df_bands_rows(H_LAT / 2, P, sw, want));
            // mode 0: full_sync; 1: corrected_async_gn with warm-up >= steps (synchronous);
            // 2: corrected_async_gn, warm-up 2 (steps 3.. asynchronous)
            for (int mode = 0; mode < 3; mode++) {
                p = df_dist_params_default();
                p.split_batch = split;
                p.band_weights_auto = 1;
                p.warmup_steps = mode == 1 ? steps : 2;
                if (mode == 0) p.sync_mode = DF_SYNC_FULL_SYNC;
                d = NULL;
                EXPECT_OK(df_dist_create(&p, &d));
                if (!d) continue;
                memcpy(x, x0, n * sizeof(float));
                int syncs[16] = {0}, after0[64] = {0};
                for (int s = 0; s < steps; s++) {
                    float *e = eps + (size_t)s * n;
                    EXPECT_OK(df_dist_eval(d, &slow, s, x, H_LAT, W_LAT, 1000.0f - 100.0f * s, e));
                    for (size_t i = 0; i < n; i++) x[i] -= 0.1f * e[i];
                    df_dist_step_stats ss;
                    df_dist_last_stats(d, &ss);
                    syncs[s] = ss.sync;
                    if (s == 0) df_dist_bands(d, after0);
                }
                EXPECT_EQ_I64(df_dist_bands(d, got), P);
                int total_rows = 0, near = 1;
                for (int i = 0; i < P; i++) {
                    total_rows += got[i];
                    if (abs(got[i] - want[i]) > 1) near = 0;
                }
                df_dist_band_plan_str(d, plan, sizeof plan);
                if (g_R == 0)
                    fprintf(stderr,
                            "[G] auto (%s, patch 0 %dx slower): %s; steps sync %d%d%d%d%d%d\n",
                            mode == 0 ? "full_sync" : mode == 1 ? "warm-up >= steps" : "async",
                            SLOW_FACTOR, plan, syncs[0], syncs[1], syncs[2], syncs[3], syncs[4],
                            syncs[5]);
                EXPECT_EQ_I64(total_rows, H_LAT / 2);
                EXPECT_TRUE(near);                      // rows follow the measured speed
                EXPECT_TRUE(got[0] * P < total_rows);   // the slow patch gets less than 1/P
                // re-planned right after step 0, once
                EXPECT_TRUE(memcmp(after0, got, (size_t)P * sizeof(int)) == 0);
                if (mode < 2) {
                    EXPECT_REL_L2(x, xr, n, 1e-5, "  [G] auto, synchronous run vs single rank");
                } else {
                    // W = 2: steps 0..2 synchronous (step 1 = the new plan's planning forward),
                    // 3..5 asynchronous
                    EXPECT_TRUE(syncs[0] && syncs[1] && syncs[2] && !syncs[3] && !syncs[4] &&
                                !syncs[5]);
                }
                df_dist_destroy(d);
            }
        }
    }

    // ---- H: naive patch bands (bands.h rule, uneven when P does not divide the rows)
    for (int sc = 0; sc < DF_SPLIT_COUNT && g_N > 1; sc++) {
        df_dist_params p = df_dist_params_default();
        p.parallelism = DF_PAR_NAIVE_PATCH;
        p.split_scheme = (df_split_scheme)sc;
        p.split_batch = 0;
        df_dist *d = NULL;
        EXPECT_OK(df_dist_create(&p, &d));
        if (!d) continue;
        int P = df_dist_topo(d)->P;
        float *sub = malloc(n * sizeof(float)), *ys = malloc(n * sizeof(float));
        float *want = malloc(n * sizeof(float));
        for (int s = 0; s < 2; s++) { // alternate: rows at step 0, columns at step 1
            int rows = sc == DF_SPLIT_ROW || (sc == DF_SPLIT_ALTERNATE && s % 2 == 0);
            EXPECT_OK(df_dist_eval(d, &m, s, x0, H_LAT, W_LAT, 500.0f, eps));
            int deep[64], st[65];
            EXPECT_OK(df_topo_bands(rows ? H_LAT : W_LAT, 1, P, NULL, deep));
            df_bands_starts(deep, P, 2, st);
            for (int i = 0; i < P; i++) { // band i alone, as one image, both CFG halves
                int hs = rows ? st[i + 1] - st[i] : H_LAT, ws = rows ? W_LAT : st[i + 1] - st[i];
                for (int b = 0; b < 2; b++)
                    for (int y = 0; y < hs; y++)
                        for (int c = 0; c < ws; c++)
                            for (int k = 0; k < CH; k++) {
                                int yy = rows ? st[i] + y : y, xx = rows ? c : st[i] + c;
                                sub[(((size_t)b * hs + y) * ws + c) * CH + k] =
                                    x0[(((size_t)b * H_LAT + yy) * W_LAT + xx) * CH + k];
                            }
                df_pctx ctx;
                df_pctx_single_init(&ctx, hs);
                int images[2] = {0, 1};
                EXPECT_OK(m.forward(m.self, &ctx, sub, 2, images, hs, ws, 500.0f, ys));
                for (int b = 0; b < 2; b++)
                    for (int y = 0; y < hs; y++)
                        for (int c = 0; c < ws; c++)
                            for (int k = 0; k < CH; k++) {
                                int yy = rows ? st[i] + y : y, xx = rows ? c : st[i] + c;
                                want[(((size_t)b * H_LAT + yy) * W_LAT + xx) * CH + k] =
                                    ys[(((size_t)b * hs + y) * ws + c) * CH + k];
                            }
            }
            EXPECT_REL_L2(eps, want, n, 1e-6, "  [H] naive patch bands vs sub-images");
        }
        char plan[256];
        df_dist_band_plan_str(d, plan, sizeof plan);
        if (g_R == 0)
            fprintf(stderr, "[H] naive %s: %s\n", df_split_scheme_name(p.split_scheme), plan);
        free(sub), free(ys), free(want);
        df_dist_destroy(d);
    }

    // ---- D: shape validation
    {
        df_dist_params p = df_dist_params_default();
        p.split_batch = 0;
        df_dist *d = NULL;
        EXPECT_OK(df_dist_create(&p, &d));
        if (d && g_N > 1) {
            EXPECT_ERR(df_dist_plan(d, &m, 2 * g_N + 1, W_LAT), DF_ERR_SHAPE,
                       "must be a multiple of 2");
            // N bands need >= N rows at the deepest level: 2(N-1) latent rows are too few
            char want[64];
            snprintf(want, sizeof want, "the largest N for this size is %d", g_N - 1);
            EXPECT_ERR(df_dist_plan(d, &m, 2 * (g_N - 1), W_LAT), DF_ERR_SHAPE, want);
            EXPECT_OK(df_dist_plan(d, &m, 2 * g_N, W_LAT)); // one row each
        }
        df_dist_destroy(d);
    }

    free(x0), free(x), free(xr), free(eps), free(eref), free(xckpt), free(xf32);
    synth_free(&sm);
    // every rank fails if any failed
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
