// Topology and band geometry of the distributed runtime (no MPI needed): rank -> (group, patch,
// images) as distrifuser's DistriConfig (spec §1.2), bands at every level, shape validation
// messages, parameter names.
#include "df_test.h"
#include "runtime/bands.h"
#include "runtime/dist.h"

#include <string.h>

static void check_topo(int N, int split, int rank, int P, int group, int patch, int img0, int B) {
    df_topo t;
    EXPECT_OK(df_topo_compute(N, rank, split, 2, &t));
    EXPECT_EQ_I64(t.P, P);
    EXPECT_EQ_I64(t.group, group);
    EXPECT_EQ_I64(t.patch, patch);
    EXPECT_EQ_I64(t.img0, img0);
    EXPECT_EQ_I64(t.B, B);
}

int main(void) {
    // spec §1.2 mapping table
    check_topo(1, 1, 0, 1, 0, 0, 0, 2);  // N=1: plain model, batch 2
    check_topo(2, 1, 0, 1, 0, 0, 0, 1);  // N=2 split: rank0 uncond full image
    check_topo(2, 1, 1, 1, 1, 0, 1, 1);  //            rank1 cond full image
    check_topo(2, 0, 1, 2, 0, 1, 0, 2);  // N=2 no split: 2 stripes, both halves
    check_topo(4, 1, 0, 2, 0, 0, 0, 1);  // N=4 split: ranks 0-1 uncond stripes 0/1
    check_topo(4, 1, 1, 2, 0, 1, 0, 1);
    check_topo(4, 1, 2, 2, 1, 0, 1, 1);  //            ranks 2-3 cond stripes 0/1
    check_topo(4, 1, 3, 2, 1, 1, 1, 1);
    check_topo(8, 1, 5, 4, 1, 1, 1, 1);
    check_topo(8, 0, 5, 8, 0, 5, 0, 2);
    check_topo(3, 0, 2, 3, 0, 2, 0, 2);  // any N without split batch
    check_topo(6, 1, 4, 3, 1, 1, 1, 1);  // N=6 split: 2 groups of 3

    // no CFG: split batch has nothing to split
    df_topo t;
    EXPECT_OK(df_topo_compute(4, 3, 1, 1, &t));
    EXPECT_EQ_I64(t.P, 4);
    EXPECT_EQ_I64(t.B, 1);
    // odd N with split batch and CFG runs as no split batch
    EXPECT_OK(df_topo_compute(3, 2, 1, 2, &t));
    EXPECT_TRUE(t.split_fallback && t.P == 3 && t.n_groups == 1 && t.patch == 2 && t.B == 2);
    EXPECT_OK(df_topo_compute(4, 2, 1, 2, &t));
    EXPECT_TRUE(!t.split_fallback && t.P == 2);
    EXPECT_ERR(df_topo_compute(4, 4, 1, 2, &t), DF_ERR_ARG, "bad rank");

    // bands: patch i covers rows [i H/P, (i+1) H/P) at every level
    int r0, r1;
    df_topo_band(128, 8, 3, 0, &r0, &r1);
    EXPECT_EQ_I64(r0, 48);
    EXPECT_EQ_I64(r1, 64);
    df_topo_band(128, 8, 3, 2, &r0, &r1);
    EXPECT_EQ_I64(r0, 12);
    EXPECT_EQ_I64(r1, 16);
    const int Ps[6] = {1, 2, 3, 4, 6, 8};
    for (int k = 0; k < 6; k++) { // bands tile the image at every level (H = 96)
        int P = Ps[k];
        for (int lvl = 0; lvl <= 2; lvl++) {
            int prev = 0;
            for (int i = 0; i < P; i++) {
                df_topo_band(96, P, i, lvl, &r0, &r1);
                EXPECT_EQ_I64(r0, prev);
                prev = r1;
            }
            EXPECT_EQ_I64(prev, 96 >> lvl);
        }
    }

    // the band rule (bands.h): at most one row of difference, the first bands get the extra
    int rws[8];
    EXPECT_OK(df_bands_rows(32, 3, NULL, rws));
    EXPECT_TRUE(rws[0] == 11 && rws[1] == 11 && rws[2] == 10);
    EXPECT_OK(df_bands_rows(32, 8, NULL, rws)); // even: the old rule
    EXPECT_TRUE(df_bands_even(rws, 8) && rws[7] == 4);
    EXPECT_OK(df_bands_rows(7, 7, NULL, rws));
    EXPECT_TRUE(df_bands_even(rws, 7) && rws[0] == 1);
    EXPECT_ERR(df_bands_rows(7, 8, NULL, rws), DF_ERR_SHAPE, "at most 7 bands");
    for (int n = 1; n <= 8; n++) { // every n, totals n..40: sums, >= 1, spread <= 1
        for (int tot = n; tot <= 40; tot++) {
            EXPECT_OK(df_bands_rows(tot, n, NULL, rws));
            int sum = 0, mn = 1 << 30, mx = 0;
            for (int i = 0; i < n; i++) {
                sum += rws[i];
                mn = rws[i] < mn ? rws[i] : mn;
                mx = rws[i] > mx ? rws[i] : mx;
            }
            EXPECT_TRUE(sum == tot && mn >= 1 && mx - mn <= 1);
        }
    }
    // weights: proportional, largest remainder, every band >= 1 row
    const double w31[2] = {3, 1}, wtiny[3] = {100, 1, 1}, weq[3] = {2, 2, 2};
    EXPECT_OK(df_bands_rows(32, 2, w31, rws));
    EXPECT_TRUE(rws[0] == 24 && rws[1] == 8);
    EXPECT_OK(df_bands_rows(10, 3, wtiny, rws));
    EXPECT_TRUE(rws[0] == 8 && rws[1] == 1 && rws[2] == 1);
    EXPECT_OK(df_bands_rows(32, 3, weq, rws)); // equal weights = the unweighted rule
    EXPECT_TRUE(rws[0] == 11 && rws[1] == 11 && rws[2] == 10);
    const double wbad[2] = {1, 0};
    EXPECT_ERR(df_bands_rows(32, 2, wbad, rws), DF_ERR_ARG, "weight 1");
    int st[4];
    const int r3[3] = {11, 11, 10};
    df_bands_starts(r3, 3, 4, st); // SDXL: 4 latent rows per deepest row
    EXPECT_TRUE(st[0] == 0 && st[1] == 44 && st[2] == 88 && st[3] == 128);
    EXPECT_OK(df_topo_bands(128, 2, 3, NULL, rws));
    EXPECT_TRUE(rws[0] == 11 && rws[2] == 10);

    // shape validation: any P up to the deepest-level rows; H a multiple of 2^n_down
    EXPECT_OK(df_topo_check_shape(8, 2, 128, 128, 0, 8));
    EXPECT_OK(df_topo_check_shape(3, 2, 96, 80, 0, 8));
    EXPECT_OK(df_topo_check_shape(8, 3, 96, 96, 0, 8)); // 12 rows: 2/2/2/2/1/1/1/1
    EXPECT_OK(df_topo_check_shape(7, 2, 128, 128, 0, 8));
    EXPECT_ERR(df_topo_check_shape(4, 2, 62, 64, 0, 8), DF_ERR_SHAPE, "multiple of 4");
    EXPECT_ERR(df_topo_check_shape(4, 2, 62, 64, 0, 8), DF_ERR_SHAPE, "62x64");
    EXPECT_ERR(df_topo_check_shape(20, 2, 64, 64, 1, 8), DF_ERR_SHAPE, "column");
    EXPECT_ERR(df_topo_check_shape(20, 2, 64, 64, 0, 8), DF_ERR_SHAPE, "at most 16 bands");
    EXPECT_OK(df_topo_check_shape(1, 2, 64, 64, 0, 8));
    // whole-run check: the largest N (split batch with CFG doubles it)
    EXPECT_OK(df_topo_check_ranks(7, 1, 2, 2, 128, 128, 0, 8));
    EXPECT_OK(df_topo_check_ranks(64, 1, 2, 2, 128, 128, 0, 8));
    EXPECT_ERR(df_topo_check_ranks(66, 1, 2, 2, 128, 128, 0, 8), DF_ERR_SHAPE,
               "the largest N for this size is 64");
    EXPECT_ERR(df_topo_check_ranks(33, 1, 2, 2, 128, 128, 0, 8), DF_ERR_SHAPE,
               "the largest N for this size is 64"); // odd: 33 bands of 32 rows
    EXPECT_ERR(df_topo_check_ranks(33, 0, 2, 2, 128, 128, 0, 8), DF_ERR_SHAPE,
               "the largest N for this size is 32");

    // --band-weights parsing
    df_dist_params bw = df_dist_params_default();
    char err[256];
    EXPECT_TRUE(df_band_weights_parse("1,2.5,0.5", &bw, err, sizeof err));
    EXPECT_TRUE(bw.n_band_weights == 3 && bw.band_weights[1] == 2.5 && !bw.band_weights_auto);
    EXPECT_TRUE(df_band_weights_parse("auto", &bw, err, sizeof err));
    EXPECT_TRUE(bw.band_weights_auto && bw.n_band_weights == 0);
    EXPECT_TRUE(!df_band_weights_parse("1,-2", &bw, err, sizeof err) && strstr(err, "1,-2"));
    EXPECT_TRUE(!df_band_weights_parse("1,", &bw, err, sizeof err));
    EXPECT_TRUE(!df_band_weights_parse("x", &bw, err, sizeof err));
    EXPECT_TRUE(!df_band_weights_parse("", &bw, err, sizeof err));

    // parameter names round-trip
    for (int i = 0; i < DF_SYNC_COUNT; i++) {
        df_sync_mode m;
        EXPECT_TRUE(df_sync_mode_parse(df_sync_mode_name((df_sync_mode)i), &m) && (int)m == i);
    }
    for (int i = 0; i < DF_SPLIT_COUNT; i++) {
        df_split_scheme s;
        EXPECT_TRUE(df_split_scheme_parse(df_split_scheme_name((df_split_scheme)i), &s) &&
                    (int)s == i);
    }
    df_parallelism par;
    EXPECT_TRUE(df_parallelism_parse("naive_patch", &par) && par == DF_PAR_NAIVE_PATCH);
    EXPECT_TRUE(!df_sync_mode_parse("bogus", &(df_sync_mode){0}));
    df_comm_dtype cd;
    EXPECT_TRUE(df_comm_dtype_parse("f16", &cd) && cd == DF_COMM_F16);
    df_dist_params p = df_dist_params_default();
    EXPECT_EQ_I64(p.warmup_steps, 4);
    EXPECT_EQ_I64(p.comm_checkpoint, 5);
    EXPECT_TRUE(p.sync_mode == DF_SYNC_CORRECTED_ASYNC_GN && p.split_batch == 1);

    // a plain process (no launcher) is one rank without MPI; bad parameters are refused
    EXPECT_OK(df_dist_init(NULL, NULL, 0, 0));
    df_dist *d = NULL;
    p.comm_checkpoint = 0;
    EXPECT_ERR(df_dist_create(&p, &d), DF_ERR_ARG, "comm_checkpoint");
    p = df_dist_params_default();
    p.parallelism = DF_PAR_TENSOR; // one rank: degree 1, accepted
    EXPECT_OK(df_dist_create(&p, &d));
    df_dist_destroy(d);
    d = NULL;
    p = df_dist_params_default();
    EXPECT_OK(df_dist_create(&p, &d));
    EXPECT_EQ_I64(df_dist_size(d), 1);
    EXPECT_EQ_I64(df_dist_rank(d), 0);
    df_dist_destroy(d);
    EXPECT_OK(df_dist_finalize());
    return df_test_result();
}
