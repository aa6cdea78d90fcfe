// DistriFusion goldens (../shared/golden/distrifusion): the tiny SDXL pipeline, 512x512
// (latent 64x64), 10 steps, guidance 5, zero negative embeddings, latents = in.noise, run through
// df_dist + the real UNet + the scheduler, for every configuration of the manifest whose world
// size equals this run's N (gn-compat on, comm_checkpoint 20 as the goldens). Final latents (and
// per-step latents where given) must match within rel-L2 <= 1e-4. With N = 1 (a plain process)
// the single-device diffusers latents are checked instead, and with N > 1 the synchronous
// configurations are also run with the exact GroupNorm (gn_compat 0) and compared with the
// single-device run.
// Usage: [mpiexec -n N] test_mpi_golden [f1,f2,...]   (only configs whose name contains one of
// the comma-separated substrings; all configs of this N without an argument)
#include "tool_env.h"
#include "../df_test.h"
#include "io/safetensors.h"
#include "model/unet.h"
#include "runtime/dist.h"
#include "runtime/dist_unet.h"
#include "sched/sched.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { HL = 64, WL = 64, CL = 4, T_TXT = 77, D_TXT = 64, D_POOL = 32, STEPS = 10 };
static int g_N, g_R;
static char g_dir[4096];

// 1 if name contains one of the comma-separated substrings of filter (or filter is empty)
static int selected(const char *name, const char *filter) {
    if (!filter || !*filter) return 1;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", filter);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
        if (strstr(name, tok)) return 1;
    return 0;
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s) s[n] = 0;
    fclose(f);
    return s;
}

// NCHW [C][H][W] -> NHWC [H][W][C]
static void nchw_to_nhwc(float *dst, const float *src, int C, int H, int W) {
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                dst[((size_t)y * W + x) * C + c] = src[((size_t)c * H + y) * W + x];
}

typedef struct ctx {
    df_unet *u;
    float enc[2 * T_TXT * D_TXT], pooled[2 * D_POOL], tids[2 * 6];
    float noise[HL * WL * CL]; // NHWC
    df_sched_config scfg;
    df_st_file *fin, *ffinal, *fsteps;
} ctx;

// Runs the pipeline loop; writes the final latents (NHWC) and the per-step latents.
static int g_plan_tensors;
static size_t g_plan_elems;

static df_status run_pipeline(ctx *c, const df_dist_params *p, df_sched_kind kind, float *lat,
                              float *steps_out, double *t_total, df_dist_step_stats *tot) {
    size_t n = (size_t)HL * WL * CL;
    df_dist *d = NULL;
    df_dist_unet *du = NULL;
    df_sched *s = NULL;
    float *xin = malloc(2 * n * sizeof(float)), *eps = malloc(2 * n * sizeof(float));
    float *g = malloc(n * sizeof(float));
    df_status st = xin && eps && g ? DF_OK : DF_ERR_NOMEM;
    if (st == DF_OK) st = df_dist_create(p, &d);
    if (st == DF_OK)
        st = df_dist_unet_create(d, c->u, HL, WL, c->enc, T_TXT, c->pooled, c->tids, &du);
    if (st == DF_OK) st = df_sched_create(kind, &c->scfg, STEPS, n, &s);
    double t0 = df_time_s();
    if (st == DF_OK) {
        memcpy(lat, c->noise, n * sizeof(float));
        df_sched_init_latents(s, lat, n);
        for (int i = 0; i < STEPS && st == DF_OK; i++) {
            st = df_sched_scale_model_input(s, i, lat, xin, n);
            if (st != DF_OK) break;
            memcpy(xin + n, xin, n * sizeof(float));
            st = df_dist_eval(d, df_dist_unet_model(du), i, xin, HL, WL, df_sched_timestep(s, i),
                              eps);
            if (st != DF_OK) break;
            st = df_cfg_combine(g, eps, eps + n, 1, n, 5.0f, 0.0f);
            if (st == DF_OK) st = df_sched_step(s, i, g, lat, n, NULL, NULL);
            if (st == DF_OK && steps_out && steps_out != lat)
                memcpy(steps_out + (size_t)i * n, lat, n * sizeof(float));
        }
    }
    *t_total = df_time_s() - t0;
    if (d) {
        df_dist_total_stats(d, tot);
        g_plan_tensors = df_dist_comm_tensors(d);
        g_plan_elems = df_dist_comm_slot_elems(d);
    }
    df_sched_destroy(s);
    df_dist_unet_destroy(du);
    df_dist_destroy(d);
    free(xin), free(eps), free(g);
    return st;
}

static df_status load_nhwc(df_st_file *f, const char *name, int batch, float *out) {
    size_t n = (size_t)HL * WL * CL;
    float *tmp = malloc((size_t)batch * n * sizeof(float));
    DF_FAIL_IF(!tmp, DF_ERR_NOMEM, "oom");
    df_status st = df_st_read_f32(f, name, tmp, (size_t)batch * n);
    if (st == DF_OK)
        for (int b = 0; b < batch; b++) nchw_to_nhwc(out + b * n, tmp + b * n, CL, HL, WL);
    free(tmp);
    return st;
}

static void compare_tol(const char *label, const float *got, const float *want, size_t n,
                        double *worst, double tol) {
    double r = df_rel_l2(got, want, n);
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        double dd = fabs((double)got[i] - want[i]);
        if (dd > mx || dd != dd) mx = dd;
    }
    df_test_checks++;
    int ok = r <= tol && mx <= 1e-2;
    if (!ok) df_test_failures++;
    if (r > *worst || r != r) *worst = r;
    if (g_R == 0)
        fprintf(stderr, "  %-48s rel-L2 %.3e max|d| %.2e%s\n", label, r, mx, ok ? "" : "  FAIL");
}

// 64-bit FNV-1a of the final latents, printed per configuration so that two builds can be
// compared bit for bit (diff the logs).
static unsigned long long lat_hash(const float *x, size_t n) {
    const unsigned char *b = (const unsigned char *)x;
    unsigned long long h = 1469598103934665603ull;
    for (size_t i = 0; i < n * sizeof(float); i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void compare(const char *label, const float *got, const float *want, size_t n,
                    double *worst) {
    compare_tol(label, got, want, n, worst, 1e-4);
}

int main(int argc, char **argv) {
    if (df_dist_init(&argc, &argv, 0, df_tool_launched_by_mpi()) != DF_OK) {
        fprintf(stderr, "init: %s\n", df_last_error());
        return 1;
    }
    df_set_threads(1);
    g_N = df_mpi_world_size();
    g_R = df_mpi_world_rank();
    const char *filter = argc > 1 ? argv[1] : "";
    const char *gd = df_test_golden_dir();
    if (!gd) {
        df_dist_finalize();
        return 77;
    }
    snprintf(g_dir, sizeof g_dir, "%s", gd);
    char path[4600];
    static ctx c;
    memset(&c, 0, sizeof c);
    snprintf(path, sizeof path, "%s/models/tiny-sdxl", g_dir);
    df_status st = df_unet_load(path, NULL, &c.u);
    if (st != DF_OK) {
        fprintf(stderr, "rank %d: cannot load the UNet: %s\n", g_R, df_last_error());
        df_dist_abort(1);
        return 1;
    }
    // conditioning: [0] = zeros (negative_prompt None, force_zeros_for_empty_prompt), [1] = prompt
    df_st_file *fe = NULL;
    snprintf(path, sizeof path, "%s/sdxl/encode_prompt.safetensors", g_dir);
    EXPECT_OK(df_st_open(path, &fe));
    EXPECT_OK(df_st_read_f32(fe, "default_negative_none.out.negative_prompt_embeds", c.enc,
                             T_TXT * D_TXT));
    EXPECT_OK(df_st_read_f32(fe, "default_negative_none.out.prompt_embeds", c.enc + T_TXT * D_TXT,
                             T_TXT * D_TXT));
    EXPECT_OK(df_st_read_f32(fe, "default_negative_none.out.negative_pooled_prompt_embeds",
                             c.pooled, D_POOL));
    EXPECT_OK(df_st_read_f32(fe, "default_negative_none.out.pooled_prompt_embeds",
                             c.pooled + D_POOL, D_POOL));
    df_st_close(fe);
    const float ids[6] = {512, 512, 0, 0, 512, 512};
    memcpy(c.tids, ids, sizeof ids);
    memcpy(c.tids + 6, ids, sizeof ids);
    snprintf(path, sizeof path, "%s/models/tiny-sdxl/scheduler/scheduler_config.json", g_dir);
    EXPECT_OK(df_sched_config_load_json(path, &c.scfg, NULL));
    snprintf(path, sizeof path, "%s/distrifusion/inputs_and_single_device.safetensors", g_dir);
    EXPECT_OK(df_st_open(path, &c.fin));
    snprintf(path, sizeof path, "%s/distrifusion/final_latents.safetensors", g_dir);
    EXPECT_OK(df_st_open(path, &c.ffinal));
    snprintf(path, sizeof path, "%s/distrifusion/step_latents.safetensors", g_dir);
    EXPECT_OK(df_st_open(path, &c.fsteps));
    if (df_test_failures) {
        fprintf(stderr, "rank %d: cannot read the golden inputs: %s\n", g_R, df_last_error());
        df_dist_abort(1);
        return 1;
    }
    EXPECT_OK(load_nhwc(c.fin, "in.noise", 1, c.noise));

    size_t n = (size_t)HL * WL * CL;
    float *lat = malloc(n * sizeof(float)), *want = malloc(n * sizeof(float));
    float *steps = malloc(STEPS * n * sizeof(float)), *wsteps = malloc(STEPS * n * sizeof(float));
    double worst = 0;
    int matched = 0, run = 0;
    char label[200];

    // single-device references (used by N = 1 and by the exact-GN checks)
    float *single[2] = {malloc(n * sizeof(float)), malloc(n * sizeof(float))};
    EXPECT_OK(load_nhwc(c.fin, "out.single_device.ddim.latents", 1, single[0]));
    EXPECT_OK(load_nhwc(c.fin, "out.single_device.euler.latents", 1, single[1]));

    if (g_N == 1) {
        const char *sn[2] = {"ddim", "euler"};
        for (int k = 0; k < 2; k++) {
            if (!selected(sn[k], filter)) continue;
            df_dist_params p = df_dist_params_default();
            p.gn_compat = 1;
            double t;
            df_dist_step_stats tot;
            df_sched_kind kind;
            EXPECT_OK(df_sched_kind_parse(sn[k], &kind));
            EXPECT_OK(run_pipeline(&c, &p, kind, lat, steps, &t, &tot));
            snprintf(label, sizeof label, "single_device.%s (%.2f s)", sn[k], t);
            compare(label, lat, single[k], n, &worst);
            if (k == 0) {
                EXPECT_OK(load_nhwc(c.fin, "out.single_device.ddim.step_latents", STEPS, wsteps));
                compare("  per-step latents", steps, wsteps, STEPS * n, &worst);
            }
        }
    }

    // manifest configurations for this N
    snprintf(path, sizeof path, "%s/distrifusion/manifest.json", g_dir);
    char *js = read_text(path);
    cJSON *root = js ? cJSON_Parse(js) : NULL;
    cJSON *cfgs = root ? cJSON_GetObjectItem(root, "configs") : NULL;
    EXPECT_TRUE(cfgs && cJSON_IsArray(cfgs));
    cJSON *it;
    cJSON_ArrayForEach(it, cfgs) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(it, "name"));
        cJSON *cf = cJSON_GetObjectItem(it, "config");
        if (!name || !cf) continue;
        int ws = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(cf, "world_size"));
        if (ws != g_N || !selected(name, filter)) continue;
        df_dist_params p = df_dist_params_default();
        p.gn_compat = 1;
        p.comm_checkpoint = 20;
        p.split_batch = cJSON_IsTrue(cJSON_GetObjectItem(cf, "split_batch"));
        p.warmup_steps = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(cf, "warmup_steps"));
        df_sched_kind kind;
        int ok = df_parallelism_parse(
                     cJSON_GetStringValue(cJSON_GetObjectItem(cf, "parallelism")), &p.parallelism) &&
                 df_sync_mode_parse(cJSON_GetStringValue(cJSON_GetObjectItem(cf, "mode")),
                                    &p.sync_mode) &&
                 df_split_scheme_parse(
                     cJSON_GetStringValue(cJSON_GetObjectItem(cf, "split_scheme")),
                     &p.split_scheme) &&
                 df_sched_kind_parse(cJSON_GetStringValue(cJSON_GetObjectItem(cf, "scheduler")),
                                     &kind) == DF_OK;
        EXPECT_TRUE(ok);
        if (!ok) continue;
        double t;
        df_dist_step_stats tot;
        snprintf(path, sizeof path, "out.%s.step_latents", name);
        int have_steps = df_st_find(c.fsteps, path) != NULL;
        st = run_pipeline(&c, &p, kind, lat, steps, &t, &tot);
        EXPECT_OK(st);
        if (st != DF_OK) {
            fprintf(stderr, "rank %d: %s: %s\n", g_R, name, df_last_error());
            df_dist_abort(1);
        }
        run++;
        snprintf(label, sizeof label, "%s (%.2f s)", name, t);
        if (g_R == 0)
            fprintf(stderr, "  %s: final latents fnv %016llx\n", name, lat_hash(lat, n));
        int f0 = df_test_failures;
        snprintf(path, sizeof path, "out.%s.latents", name);
        EXPECT_OK(load_nhwc(c.ffinal, path, 1, want));
        compare(label, lat, want, n, &worst);
        if (have_steps) {
            snprintf(path, sizeof path, "out.%s.step_latents", name);
            EXPECT_OK(load_nhwc(c.fsteps, path, STEPS, wsteps));
            compare("  per-step latents", steps, wsteps, STEPS * n, &worst);
        }
        // the comm plan equals distrifuser's registration (count and elements per slot)
        EXPECT_EQ_I64(g_plan_tensors,
                      (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(it, "registered_comm_tensors")));
        EXPECT_EQ_I64((int64_t)g_plan_elems,
                      (int64_t)cJSON_GetNumberValue(
                          cJSON_GetObjectItem(it, "comm_buffer_elements_per_slot")));
        if (df_test_failures == f0) matched++;
        // distrifuser with comm_checkpoint 60 (> the 56 registered tensors) launches the whole
        // async queue at the next step's first enqueue: layer 0 reads 2-step-old data and races
        // with the in-flight gather (sync_gn_w1: rel-L2 1.2e-4 vs the golden, run-to-run
        // noise). Our manager launches the tail at the end of the step: the same result.
        if (strstr(name, "_patch_sync_gn_w1") && !strstr(name, "naive")) {
            p.comm_checkpoint = 60;
            EXPECT_OK(run_pipeline(&c, &p, kind, steps /* scratch */, NULL, &t, &tot));
            snprintf(label, sizeof label, "  comm_checkpoint 60 vs golden (20)");
            compare(label, steps, want, n, &worst);
            snprintf(label, sizeof label, "  comm_checkpoint 60 vs 20, ours");
            compare_tol(label, steps, lat, n, &worst, 0.0);
            p.comm_checkpoint = 20;
        }
        // exact GroupNorm: synchronous patch parallelism (full_sync, or any mode with warm-up
        // covering every step) equals the single device up to float order
        if (p.parallelism == DF_PAR_PATCH && p.sync_mode == DF_SYNC_FULL_SYNC &&
            p.warmup_steps == 4) {
            double dummy = 0;
            for (int v = 0; v < 2; v++) {
                p.gn_compat = 0;
                if (v == 1) {
                    p.sync_mode = DF_SYNC_CORRECTED_ASYNC_GN;
                    p.warmup_steps = STEPS;
                }
                EXPECT_OK(run_pipeline(&c, &p, kind, lat, NULL, &t, &tot));
                snprintf(label, sizeof label, "  exact GN, %s w%d vs single device",
                         df_sync_mode_name(p.sync_mode), p.warmup_steps);
                compare_tol(label, lat, single[kind == DF_SCHED_EULER], n, &dummy, 1e-5);
            }
        }
    }
    cJSON_Delete(root);
    free(js);
    if (g_R == 0)
        fprintf(stderr, "N=%d: %d/%d configurations matched the goldens, worst rel-L2 %.3e\n", g_N,
                matched, run, worst);

    free(lat), free(want), free(steps), free(wsteps), free(single[0]), free(single[1]);
    df_st_close(c.fin);
    df_st_close(c.ffinal);
    df_st_close(c.fsteps);
    df_unet_destroy(c.u);
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
