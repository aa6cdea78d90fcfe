// The engine API (include/distrifuse/engine.h) in one process, on the df-make-model test
// models: df_engine_generate equals df_generate bit for bit, the engine is reusable across calls
// and sizes, rank queries, the name tables (every name parses back to its value, unknown names
// fail), parameter checks, and a missing model fails cleanly. The MPI side runs through the
// programs (cli_mpi, cli_dist_golden, cli_batch_*).
#include "df_test.h"

#include "distrifuse/df.h"
#include "distrifuse/predict.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_model[4300];

static void test_names(void) {
    for (int i = 0; i < DF_PAR_COUNT; i++) {
        df_parallelism v = DF_PAR_COUNT;
        EXPECT_TRUE(df_parallelism_parse(df_parallelism_name((df_parallelism)i), &v) &&
                    (int)v == i);
    }
    for (int i = 0; i < DF_SYNC_COUNT; i++) {
        df_sync_mode v = DF_SYNC_COUNT;
        EXPECT_TRUE(df_sync_mode_parse(df_sync_mode_name((df_sync_mode)i), &v) && (int)v == i);
    }
    for (int i = 0; i < DF_SPLIT_COUNT; i++) {
        df_split_scheme v = DF_SPLIT_COUNT;
        EXPECT_TRUE(df_split_scheme_parse(df_split_scheme_name((df_split_scheme)i), &v) &&
                    (int)v == i);
    }
    for (int i = 0; i < DF_COMM_DTYPE_USER_COUNT; i++) {
        df_comm_dtype v = DF_COMM_DTYPE_COUNT;
        EXPECT_TRUE(df_comm_dtype_parse(df_comm_dtype_name((df_comm_dtype)i), &v) && (int)v == i);
    }
    for (int i = 0; i < DF_PROGRESS_COUNT; i++) {
        df_progress v = DF_PROGRESS_COUNT;
        EXPECT_TRUE(df_progress_parse(df_progress_name((df_progress)i), &v) && (int)v == i);
    }
    for (int i = 0; i < DF_GN_COMPAT_COUNT; i++) {
        df_gn_compat v = DF_GN_COMPAT_COUNT;
        EXPECT_TRUE(df_gn_compat_parse(df_gn_compat_name((df_gn_compat)i), &v) && (int)v == i);
    }
    for (int i = 0; i <= 1; i++) {
        df_compute_dtype v = (df_compute_dtype)7;
        EXPECT_TRUE(df_compute_parse(df_compute_name((df_compute_dtype)i), &v) && (int)v == i);
    }
    for (int i = -1; i < DF_CPU_VARIANT_COUNT; i++) {
        df_cpu_variant v = DF_CPU_VARIANT_COUNT;
        EXPECT_TRUE(df_cpu_variant_parse(df_cpu_variant_name((df_cpu_variant)i), &v) &&
                    (int)v == i);
    }
    EXPECT_EQ_I64(df_sampler_count(), 5);
    EXPECT_TRUE(strcmp(df_sampler_name(0), "ddim") == 0);
    EXPECT_TRUE(strcmp(df_sampler_name(4), "pndm") == 0);
    EXPECT_TRUE(df_sampler_name(5) == NULL && df_sampler_name(-1) == NULL);
    EXPECT_TRUE(strcmp(df_gn_compat_name(DF_GN_ORIGINAL), "original") == 0);
    EXPECT_TRUE(strcmp(df_sync_mode_name(DF_SYNC_COUNT), "?") == 0);
    // unknown names are failures, never a silent default
    df_sync_mode sm = DF_SYNC_FULL_SYNC;
    EXPECT_TRUE(!df_sync_mode_parse("fullsync", &sm) && sm == DF_SYNC_FULL_SYNC);
    df_gn_compat g = DF_GN_EXACT;
    EXPECT_TRUE(!df_gn_compat_parse("Original", &g) && g == DF_GN_EXACT);
    df_compute_dtype c = DF_COMPUTE_F32;
    EXPECT_TRUE(!df_compute_parse("f16", &c) && !df_compute_parse(NULL, &c));
    df_comm_dtype cd = DF_COMM_F32;
    EXPECT_TRUE(!df_comm_dtype_parse("f8", &cd) && cd == DF_COMM_F32);
}

static void test_params(void) {
    df_parallel_params pp = df_parallel_params_default();
    EXPECT_EQ_I64(pp.parallelism, DF_PAR_PATCH);
    EXPECT_EQ_I64(pp.sync_mode, DF_SYNC_CORRECTED_ASYNC_GN);
    EXPECT_EQ_I64(pp.warmup_steps, 4);
    EXPECT_EQ_I64(pp.split_batch, 1);
    EXPECT_EQ_I64(pp.comm_checkpoint, 5);
    EXPECT_EQ_I64(pp.image_groups, 1);
    EXPECT_EQ_I64(pp.parallel_vae, 1);
    EXPECT_EQ_I64(pp.cpu_variant, DF_CPU_AUTO);
    EXPECT_EQ_I64(pp.gn_compat, DF_GN_EXACT);
    char err[256];
    EXPECT_TRUE(df_parallel_band_weights_parse("1,2.5,3", &pp, err, sizeof err));
    EXPECT_TRUE(pp.n_band_weights == 3 && pp.band_weights[1] == 2.5 && !pp.band_weights_auto);
    EXPECT_TRUE(df_parallel_band_weights_parse("auto", &pp, err, sizeof err));
    EXPECT_TRUE(pp.band_weights_auto && pp.n_band_weights == 0);
    EXPECT_TRUE(!df_parallel_band_weights_parse("1,-2", &pp, err, sizeof err) && err[0]);
    EXPECT_EQ_I64(df_gen_params_default().compute, DF_COMPUTE_F32);
}

static void on_step(void *user, int step, double eval_s, const df_dist_step_stats *st) {
    int *n = user;
    EXPECT_EQ_I64(step, *n); // 0-based model calls, in order
    EXPECT_TRUE(st->sync == 1 && st->t_total == eval_s && eval_s >= 0);
    (*n)++;
}

static int same_image(const df_image *a, const df_image *b) {
    return a->width == b->width && a->height == b->height && a->rgb && b->rgb &&
           memcmp(a->rgb, b->rgb, df_image_bytes(a->width, a->height)) == 0;
}

static void test_engine(void) {
    df_parallel_params pp = df_parallel_params_default();
    df_engine *e = NULL;
    // bad parameters: an error on every rank, no engine
    pp.image_groups = 0;
    EXPECT_ERR(df_engine_create(g_model, NULL, &pp, 0, &e), DF_ERR_ARG, "--image-groups");
    EXPECT_TRUE(e == NULL);
    pp = df_parallel_params_default();
    pp.comm_checkpoint = 0;
    EXPECT_ERR(df_engine_create(g_model, NULL, &pp, 0, &e), DF_ERR_ARG, "--comm-checkpoint");
    pp = df_parallel_params_default();
    EXPECT_ERR(df_engine_create("/nonexistent/model", NULL, &pp, 0, &e), DF_ERR_IO,
               "/nonexistent/model");
    EXPECT_TRUE(e == NULL);

    EXPECT_OK(df_engine_create(g_model, NULL, &pp, 0, &e));
    if (!e) return;
    EXPECT_EQ_I64(df_engine_rank(e), 0);
    EXPECT_EQ_I64(df_engine_size(e), 1);
    EXPECT_EQ_I64(df_engine_group_size(e), 1);
    EXPECT_EQ_I64(df_engine_is_output_rank(e), 1);
    EXPECT_EQ_I64(df_world_size(), 1);
    EXPECT_TRUE(df_engine_model(e) != NULL);

    df_gen_params p = df_gen_params_default();
    p.prompt = "a red cube";
    p.width = p.height = 64;
    p.steps = 3;
    p.sampler = "euler";
    p.threads = 1;
    EXPECT_OK(df_engine_check(e, &p));
    df_gen_params bad = p;
    bad.steps = 0;
    EXPECT_ERR(df_engine_check(e, &bad), DF_ERR_ARG, "steps");

    df_image a = {0}, b = {0}, c = {0};
    df_gen_info ia, ib;
    EXPECT_OK(df_engine_generate(e, &p, &a, &ia));
    int calls = 0;
    df_engine_set_step_callback(e, on_step, &calls);
    EXPECT_OK(df_engine_generate(e, &p, &b, &ib)); // reused: the same result
    EXPECT_EQ_I64(calls, 3);
    df_engine_set_step_callback(e, NULL, NULL);
    EXPECT_TRUE(same_image(&a, &b));
    EXPECT_TRUE(strcmp(ia.infotext, ib.infotext) == 0);
    EXPECT_EQ_I64(ia.timings.unet_calls, 3);
    EXPECT_OK(df_generate(df_engine_model(e), &p, &c, NULL)); // the plain entry point
    EXPECT_TRUE(same_image(&a, &c));
    df_image_free(&b);
    df_image_free(&c);
    // another size on the same engine, then back
    df_gen_params q = p;
    q.width = 128;
    EXPECT_OK(df_engine_generate(e, &q, &b, NULL));
    EXPECT_TRUE(b.width == 128 && b.height == 64);
    df_image_free(&b);
    EXPECT_OK(df_engine_generate(e, &p, &b, NULL));
    EXPECT_TRUE(same_image(&a, &b));
    df_image_free(&b);
    df_dist_step_stats st;
    df_engine_last_stats(e, &st);
    EXPECT_TRUE(st.bytes_sent == 0 && st.n_collectives == 0); // one process: no exchange
    EXPECT_EQ_I64(df_engine_comm_tensors(e), 0);
    char plan[256];
    EXPECT_EQ_I64(df_engine_band_plan(e, plan, sizeof plan), 0);
    // PNDM with 1000 steps and steps_offset 1 (the test model's SD 1.5 config): a clear error
    // naming the most steps, before any generation
    q = p;
    q.sampler = "pndm";
    q.steps = 1000;
    EXPECT_ERR(df_engine_check(e, &q), DF_ERR_ARG, "at most 999 steps");
    EXPECT_ERR(df_engine_generate(e, &q, &b, NULL), DF_ERR_ARG, "at most 999 steps");
    EXPECT_TRUE(b.rgb == NULL);
    q.steps = 999;
    EXPECT_OK(df_engine_check(e, &q));
    df_image_free(&a);
    df_engine_destroy(e);
    df_engine_destroy(NULL);
}

int main(void) {
    const char *dir = df_test_models_dir();
    if (!dir) return 1;
    snprintf(g_model, sizeof g_model, "%s/tiny-sd15", dir);
    test_names();
    test_params();
    test_engine();
    return df_test_result();
}
