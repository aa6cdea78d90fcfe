// Patch-parallel VAE decode (src/runtime/vae_dist.c, df_vae_decode_band) against the whole
// decode, under mpiexec -n 1..4 (also a plain process):
//   test_mpi_vae MODEL_DIR [--no-tiled] [WxH ...]   (image sizes in pixels; default 256x192 and
//   200x136; --no-tiled skips C for the sizes after it)
//  A. band split: heights differ by at most one, the bands tile the rows, band k starts at
//     floor(k*R/n);
//  B. for every size: the N-band decode on rank 0 equals df_vae_decode untiled: rel-L2 <= 1e-5
//     on the float image, 8-bit images equal within +-1 on >= 99.9% of the values, none off by
//     more than 3; (1 process: the band code path with one band, no halos);
//     and one latent row per band;
//  C. tiled + split (small tiles): within 2x the single-rank tiled-vs-untiled difference;
//  D. a latent with fewer rows than ranks is decoded by rank 0 alone (same image).
// Bench mode (not a test): test_mpi_vae --bench MODEL_DIR HxW [tiled] prints per rank the decode
// wall time, the split (compute / halo / gather), the planned band bytes and the peak RSS.
#include "tool_env.h"

#include "../df_test.h"
#include "model/vae.h"
#include "runtime/bands.h"
#include "runtime/comm.h"
#include "runtime/dist.h"
#include "runtime/vae_dist.h"

#include <stdio.h>
#include <sys/resource.h>

static double cpu_s(void) { // user + system time of this process
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * ru.ru_stime.tv_usec;
}

static int g_N, g_R;
static int g_skip_tiled; // --no-tiled: only B (large sizes)

static void make_latent(float *x, size_t n, uint32_t seed) {
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) { // ~N(0, 1)-ish: sum of 4 uniforms, scaled
        float acc = 0;
        for (int j = 0; j < 4; j++) {
            s = s * 1664525u + 1013904223u;
            acc += (float)((s >> 8) * (1.0 / 16777216.0)) - 0.5f;
        }
        x[i] = acc * 1.7f;
    }
}

static double rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static int to_u8(float x) { // the pipeline's mapping (generate.c to_uint8)
    float v = x / 2.0f + 0.5f;
    if (!(v >= 0.0f)) v = 0.0f;
    if (v > 1.0f) v = 1.0f;
    return (int)rintf(v * 255.0f);
}

// 8-bit comparison; returns 1 if within the promise.
static int check_u8(const float *got, const float *want, size_t n, const char *label) {
    size_t off1 = 0;
    int maxd = 0;
    for (size_t i = 0; i < n; i++) {
        const int d = abs(to_u8(got[i]) - to_u8(want[i]));
        if (d > 1) off1++;
        if (d > maxd) maxd = d;
    }
    const double frac = 1.0 - (double)off1 / (double)n;
    printf("  %s: 8-bit equal within +-1 on %.5f%% of %zu values, max |diff| %d\n", label,
           100.0 * frac, n, maxd);
    return frac >= 0.999 && maxd <= 3;
}

static void test_split(void) {
    for (int R = 1; R <= 70; R++)
        for (int n = 1; n <= R && n <= 9; n++) {
            int prev = 0, mn = R, mx = 0, rows[9];
            EXPECT_OK(df_bands_rows(R, n, NULL, rows)); // the UNet / naive patch band rule
            for (int k = 0; k < n; k++) {
                int r0, r1;
                df_vae_band_split(R, n, k, &r0, &r1);
                EXPECT_EQ_I64(r0, prev);
                EXPECT_EQ_I64(r1 - r0, rows[k]);
                prev = r1;
                if (r1 - r0 < mn) mn = r1 - r0;
                if (r1 - r0 > mx) mx = r1 - r0;
            }
            EXPECT_EQ_I64(prev, R);
            EXPECT_TRUE(mn >= 1 && mx - mn <= 1);
        }
}

// In one process: band 0 of 1 through df_vae_decode_band (trivial ops).
static df_status one_reduce(void *u, double *b, size_t n) {
    (void)u, (void)b, (void)n;
    return DF_OK;
}
static df_status one_halo(void *u, const float *f, const float *l, float *t, float *b, size_t n) {
    (void)u, (void)f, (void)l, (void)n;
    return t || b ? DF_ERROR(DF_ERR_INTERNAL, "halo requested with one band") : DF_OK;
}
static df_status one_gather(void *u, const float *s, float *r, int R, size_t rf) {
    (void)u;
    memcpy(r, s, (size_t)R * rf * sizeof(float));
    return DF_OK;
}

static void test_size(df_vae *m, int H, int W) {
    const df_vae_config *c = df_vae_get_config(m);
    const int f = df_vae_scale_factor(m), h = H / f, w = W / f;
    const size_t nz = (size_t)h * w * c->latent_channels, ni = (size_t)H * W * c->out_channels;
    float *z = malloc(nz * sizeof(float));
    float *ref = g_R == 0 ? malloc(ni * sizeof(float)) : NULL;
    float *got = g_R == 0 ? malloc(ni * sizeof(float)) : NULL;
    make_latent(z, nz, 1234u + (uint32_t)H * 7 + (uint32_t)W);
    df_vae_decode_opts off;
    memset(&off, 0, sizeof off);
    off.tiling = DF_VAE_TILING_OFF;
    if (g_R == 0) EXPECT_OK(df_vae_decode(m, z, 1, h, w, ref, &off));
    char label[96];
    snprintf(label, sizeof label, "%dx%d, %d band%s", W, H, g_N, g_N > 1 ? "s" : "");

    // B: the band decode equals the whole decode
    df_vae_dist_times t;
    if (g_N > 1) {
        EXPECT_OK(df_vae_decode_dist(m, NULL, z, h, w, &off, got, &t));
        EXPECT_EQ_I64(t.bands, g_N);
        EXPECT_EQ_I64(t.tiled, 0);
    } else {
        df_vae_band_ops ops = {.k = 0, .n = 1, .allreduce_f64 = one_reduce, .halo = one_halo,
                               .allgather_rows = one_gather};
        EXPECT_OK(df_vae_decode_band(m, z, h, w, &ops, got));
    }
    if (g_R == 0) {
        const double e = rel_l2(got, ref, ni);
        printf("  %s: rel-L2 %.3g vs the whole decode\n", label, e);
        EXPECT_LE_F64(e, 1e-5);
        EXPECT_TRUE(check_u8(got, ref, ni, label));
    }

    // C: tiled + split, small tiles (4 latent rows of overlap); vs the untiled whole decode
    if (g_skip_tiled) {
        free(z);
        free(ref);
        free(got);
        return;
    }
    df_vae_decode_opts til = off;
    til.tiling = DF_VAE_TILING_FORCE;
    til.tile_sample_size = 16 * f;
    float *tref = g_R == 0 ? malloc(ni * sizeof(float)) : NULL;
    if (g_R == 0) EXPECT_OK(df_vae_decode(m, z, 1, h, w, tref, &til));
    EXPECT_OK(df_vae_decode_dist(m, NULL, z, h, w, &til, got, &t));
    EXPECT_EQ_I64(t.tiled, 1);
    if (g_R == 0) {
        const double e1 = rel_l2(tref, ref, ni), eN = rel_l2(got, ref, ni);
        printf("  %s tiled (tile %d px): rel-L2 vs untiled: 1 rank %.4g, %d ranks %.4g\n", label,
               til.tile_sample_size, e1, g_N, eN);
        EXPECT_TRUE(e1 > 0);
        EXPECT_LE_F64(eN, 2.0 * e1 + 1e-6);
    }
    free(tref);
    free(z);
    free(ref);
    free(got);
}

static int bench(const char *dir, int H, int W, int tiled) {
    df_vae *m = NULL;
    if (df_vae_load(dir, "vae", 0, &m) != DF_OK) {
        fprintf(stderr, "load %s: %s\n", dir, df_last_error());
        return 1;
    }
    const df_vae_config *c = df_vae_get_config(m);
    const int f = df_vae_scale_factor(m), h = H / f, w = W / f;
    const size_t nz = (size_t)h * w * c->latent_channels, ni = (size_t)H * W * c->out_channels;
    float *z = malloc(nz * sizeof(float));
    float *img = g_R == 0 ? df_malloc(ni * sizeof(float)) : NULL;
    make_latent(z, nz, 99u);
    const double rss0 = df_peak_rss_mb();
    df_vae_decode_opts o;
    memset(&o, 0, sizeof o);
    o.tiling = tiled ? DF_VAE_TILING_FORCE : DF_VAE_TILING_OFF;
    df_vae_dist_times t;
    const double c0 = cpu_s();
    df_status st = df_vae_decode_dist(m, NULL, z, h, w, &o, img, &t);
    const double cpu = cpu_s() - c0;
    const size_t bytes = g_N > 1 ? df_vae_decode_band_bytes(m, h, w, g_R, g_N)
                                 : df_vae_decode_bytes(m, h, w);
    printf("rank %d/%d %dx%d%s: %s decode %.3f s (compute %.3f, halo %.3f, gather %.3f; CPU %.3f s); "
           "planned activations %.1f MiB; peak RSS %.0f MiB (before the decode %.0f MiB)\n",
           g_R, g_N, W, H, tiled ? " tiled" : "", st == DF_OK ? "ok" : df_last_error(), t.total_s,
           t.compute_s, t.halo_s, t.gather_s, cpu, (double)bytes / 1048576.0, df_peak_rss_mb(), rss0);
    free(z);
    df_free(img);
    df_vae_destroy(m);
    return st != DF_OK;
}

int main(int argc, char **argv) {
    if (df_dist_init(&argc, &argv, 0, df_tool_launched_by_mpi()) != DF_OK) {
        fprintf(stderr, "init: %s\n", df_last_error());
        return 1;
    }
    df_set_threads(1);
    g_N = df_mpi_world_size();
    g_R = df_mpi_world_rank();
    if (argc >= 4 && strcmp(argv[1], "--bench") == 0) {
        int H = 0, W = 0;
        if (sscanf(argv[3], "%dx%d", &W, &H) != 2) return 2;
        int rc = bench(argv[2], H, W, argc > 4 && strcmp(argv[4], "tiled") == 0);
        df_dist_finalize();
        return rc;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: test_mpi_vae MODEL_DIR [WxH ...]\n");
        df_dist_finalize();
        return 2;
    }
    test_split();
    df_vae *m = NULL;
    EXPECT_OK(df_vae_load(argv[1], "vae", 0, &m));
    if (m) {
        if (g_R == 0) printf("%s: %d rank(s)\n", argv[1], g_N);
        if (argc > 2) {
            for (int i = 2; i < argc; i++) {
                int W = 0, H = 0;
                if (strcmp(argv[i], "--no-tiled") == 0) g_skip_tiled = 1;
                if (sscanf(argv[i], "%dx%d", &W, &H) == 2) test_size(m, H, W);
            }
        } else {
            test_size(m, 192, 256); // latent 24 x 32
            test_size(m, 136, 200); // latent 17 x 25: not a multiple of 64, uneven bands
            g_skip_tiled = 1;
            test_size(m, g_N * df_vae_scale_factor(m), 64); // one latent row per band
            g_skip_tiled = 0;
        }
        // D: fewer latent rows than ranks
        if (g_N > 1) {
            const int f = df_vae_scale_factor(m), h = g_N - 1, w = 4;
            const size_t ni = (size_t)h * f * w * f * 3;
            float z[64 * 4];
            make_latent(z, (size_t)h * w * 4, 5u);
            float *img = g_R == 0 ? malloc(ni * sizeof(float)) : NULL;
            float *ref = g_R == 0 ? malloc(ni * sizeof(float)) : NULL;
            df_vae_dist_times t;
            EXPECT_OK(df_vae_decode_dist(m, NULL, z, h, w, NULL, img, &t));
            EXPECT_EQ_I64(t.bands, 1);
            if (g_R == 0) {
                EXPECT_OK(df_vae_decode(m, z, 1, h, w, ref, NULL));
                EXPECT_LE_F64(rel_l2(img, ref, ni), 0.0);
            }
            free(img);
            free(ref);
        }
        df_vae_destroy(m);
    }
    int rc = df_test_result();
    df_dist_finalize();
    return rc;
}
