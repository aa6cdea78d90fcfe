// End-to-end pipeline tests.
//
// Golden cases (../shared/golden/{sdxl,sd15}/pipe_*.safetensors, parameters read from the
// manifest): prompt -> text encoders -> sampling loop -> VAE, with the golden's initial noise
// (in.noise, diffusers `latents=`). Checks: final latents and every step's latents (when given)
// within rel-L2 1e-4 of diffusers; the uint8 image (when out.image is given) within +-1 of the
// golden decode mapped through diffusers' postprocess on >= 99% of the values.
//
// Fast checks on tiny sizes: parameter validation, load errors, seed determinism, init latent
// from file == from memory, save_latent, single-file == folder model, no-CFG / euler_a /
// guidance_rescale paths, infotext.
//
// --compute bf16 (first arguments) runs the golden cases with bf16 convs / linears (exit 77
// without AVX512_BF16): the final latents must stay within rel-L2 DF_BF16_GOLDEN_TOL of
// diffusers' f32 (the per-step 1e-4 and image checks are reported, not enforced).
//
// Usage: test_pipeline [--compute bf16] [CASE...]   CASE = sdxl/pipe_euler_512 ..., "fast" (the fast checks; the
//        default without arguments) or "all" (fast checks and every golden case). CTest runs each
//        golden case as its own test (tests/cli/tests.cmake).
#include "df_golden.h"

#include "distrifuse/df.h"

#include "core/core.h"
#include "core/cpu.h"
#include "kernels/gemm_bf16.h"
#include "io/safetensors.h"
#include "pipeline/pipeline_impl.h"
#include "sched/sched.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------------
// Helpers

static df_model *g_models[2]; // 0 tiny-sdxl, 1 tiny-sd15 (loaded once)
// Where those models come from: <golden>/models when the golden data is present (the golden
// cases need its weights), else the df-make-model test models (the fast checks run anywhere).
static const char *g_base;

static df_model *model(int sd15) {
    if (!g_models[sd15]) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", g_base, sd15 ? "tiny-sd15" : "tiny-sdxl");
        df_status st = df_model_load(p, &g_models[sd15]);
        if (st != DF_OK) {
            fprintf(stderr, "df_model_load(%s): %s: %s\n", p, df_status_str(st), df_last_error());
            return NULL;
        }
    }
    return g_models[sd15];
}

// Collects the latents of every step.
typedef struct steps_rec {
    float *buf; // [cap][n]
    size_t n;
    int cap, count;
} steps_rec;

static void on_latents(void *user, int step, const float *lat, int c, int h, int w) {
    steps_rec *r = user;
    size_t n = (size_t)c * h * w;
    if (!r->buf) {
        r->n = n;
        r->buf = malloc((size_t)r->cap * n * sizeof(float));
    }
    if (step < r->cap && n == r->n) memcpy(r->buf + (size_t)step * n, lat, n * sizeof(float));
    if (step + 1 > r->count) r->count = step + 1;
}

// ---------------------------------------------------------------------------------------------
// Golden pipeline cases

static const char *json_str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
static double json_num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

typedef struct case_result {
    char name[96];
    double rel_latents, worst_step;
    int n_steps_checked;
    double img_within1, img_exact;
    int img_maxdiff;
    int has_image;
    double seconds;
    int ok;
} case_result;

static case_result g_results[32];
static int g_n_results;

static df_compute_dtype g_compute = DF_COMPUTE_F32; // --compute
#define DF_BF16_GOLDEN_TOL 5e-2

static void run_case(const char *dir, const cJSON *c) {
    const char *name = json_str(c, "name");
    const char *file = json_str(c, "file");
    const char *sched_class = json_str(c, "scheduler");
    const cJSON *prm = cJSON_GetObjectItemCaseSensitive(c, "params");
    int sd15 = strcmp(dir, "sd15") == 0;
    case_result *R = &g_results[g_n_results++];
    memset(R, 0, sizeof *R);
    snprintf(R->name, sizeof R->name, "%s/%s", dir, name);
    int fails0 = df_test_failures;
    df_model *m = model(sd15);
    EXPECT_TRUE(m != NULL);
    if (!m) return;

    char path[4400];
    snprintf(path, sizeof path, "%s/%s/%s", dfg_dir, dir, file);
    df_st_file *gf = NULL;
    EXPECT_OK(df_st_open(path, &gf));
    if (!gf) return;
    const df_st_tensor *t_noise = NULL, *t_lat = NULL, *t_steps = NULL, *t_img = NULL;
    float *noise = dfg_read_f32(gf, "in.noise", &t_noise);
    float *want = dfg_read_f32(gf, "out.latents", &t_lat);
    float *want_steps = dfg_read_f32(gf, "out.step_latents", &t_steps);
    float *want_img = dfg_read_f32(gf, "out.image", &t_img);
    EXPECT_TRUE(noise && want);
    if (!noise || !want) goto out;

    df_gen_params p = df_gen_params_default();
    p.prompt = json_str(prm, "prompt");
    p.negative_prompt = json_str(prm, "negative_prompt"); // JSON null -> NULL (None)
    p.steps = (int)json_num(prm, "num_inference_steps");
    p.cfg_scale = (float)json_num(prm, "guidance_scale");
    p.guidance_rescale = (float)json_num(prm, "guidance_rescale");
    p.width = (int)json_num(prm, "width");
    p.height = (int)json_num(prm, "height");
    p.sampler = df_sched_kind_name(df_sched_kind_from_class(sched_class));
    p.init_latent_data = noise;
    p.decode = want_img != NULL;
    p.vae_tiling = DF_VAE_TILE_OFF;
    p.compute = g_compute;
    const int bf16 = g_compute == DF_COMPUTE_BF16;
    steps_rec rec = {.cap = 64};
    p.on_step_latents = on_latents;
    p.user = &rec;

    // One case goes through the file path of the initial latent (writer + reader).
    char tmpf[256] = "";
    if (strcmp(R->name, "sdxl/pipe_ddim_512") == 0) {
        snprintf(tmpf, sizeof tmpf, "/tmp/df_test_pipeline_%d.safetensors", (int)getpid());
        df_st_writer *w = NULL;
        const int64_t shp[4] = {t_noise->shape[0], t_noise->shape[1], t_noise->shape[2],
                                t_noise->shape[3]};
        EXPECT_OK(df_st_writer_create(&w));
        EXPECT_OK(df_st_writer_add(w, "latents", DF_DTYPE_F32, 4, shp, noise));
        EXPECT_OK(df_st_write(w, tmpf));
        df_st_writer_destroy(w);
        p.init_latent = tmpf;
    }

    df_image img = {0};
    df_gen_info info;
    double t0 = df_time_s();
    df_status st = df_generate(m, &p, &img, &info);
    R->seconds = df_time_s() - t0;
    EXPECT_OK(st);
    if (tmpf[0]) unlink(tmpf);
    if (st != DF_OK) goto out;
    EXPECT_EQ_I64(info.width, p.width);
    EXPECT_EQ_I64(info.height, p.height);
    EXPECT_TRUE(strcmp(info.sampler, p.sampler) == 0);

    // final latents (the last step callback)
    EXPECT_EQ_I64(rec.n, t_lat->numel);
    if (rec.count > 0 && rec.n == t_lat->numel) {
        char label[160];
        snprintf(label, sizeof label, "%s out.latents", R->name);
        R->rel_latents = df_rel_l2(rec.buf + (size_t)(rec.count - 1) * rec.n, want, rec.n);
        EXPECT_REL_L2(rec.buf + (size_t)(rec.count - 1) * rec.n, want, rec.n,
                      bf16 ? DF_BF16_GOLDEN_TOL : 1e-4, label);
    }
    if (want_steps) {
        int ns = (int)t_steps->shape[0];
        EXPECT_EQ_I64(rec.count, ns);
        for (int i = 0; i < ns && i < rec.count; i++) {
            double r = df_rel_l2(rec.buf + (size_t)i * rec.n, want_steps + (size_t)i * rec.n,
                                 rec.n);
            if (r > R->worst_step || r != r) R->worst_step = r;
            R->n_steps_checked++;
            if (!(r <= 1e-4) && !bf16) {
                fprintf(stderr, "  %s step %d rel-L2 %.3e FAIL\n", R->name, i, r);
                df_test_failures++;
            }
            df_test_checks++;
        }
        fprintf(stderr, "  %-40s worst step rel-L2 %.3e over %d steps\n", R->name,
                R->worst_step, R->n_steps_checked);
    }
    if (want_img) {
        R->has_image = 1;
        int H = (int)t_img->shape[2], W = (int)t_img->shape[3];
        EXPECT_EQ_I64(img.width, W);
        EXPECT_EQ_I64(img.height, H);
        if (img.rgb && img.width == W && img.height == H) {
            size_t within = 0, exact = 0, total = (size_t)H * W * 3;
            int maxd = 0;
            for (int ch = 0; ch < 3; ch++)
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x++) {
                        // diffusers postprocess: clamp(x/2+0.5,0,1) f32, (x*255).round()
                        float v = want_img[((size_t)ch * H + y) * W + x] / 2.0f + 0.5f;
                        if (!(v >= 0.0f)) v = 0.0f;
                        if (v > 1.0f) v = 1.0f;
                        int g = (int)rintf(v * 255.0f);
                        int o = img.rgb[((size_t)y * W + x) * 3 + ch];
                        int d = abs(o - g);
                        if (d <= 1) within++;
                        if (d == 0) exact++;
                        if (d > maxd) maxd = d;
                    }
            R->img_within1 = (double)within / total;
            R->img_exact = (double)exact / total;
            R->img_maxdiff = maxd;
            fprintf(stderr, "  %-40s image: %.4f%% exact, %.4f%% within 1, max diff %d\n",
                    R->name, 100 * R->img_exact, 100 * R->img_within1, maxd);
            if (!bf16) EXPECT_GE_F64(R->img_within1, 0.99);
        }
    }
    df_image_free(&img);
    free(rec.buf);
out:
    R->ok = df_test_failures == fails0;
    free(noise);
    free(want);
    free(want_steps);
    free(want_img);
    df_st_close(gf);
}

static int selected(int argc, char **argv, const char *name) {
    if (argc <= 1) return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "all") == 0 || strcmp(argv[i], name) == 0) return 1;
    return 0;
}

static void golden_cases(int argc, char **argv) {
    const char *dirs[2] = {"sdxl", "sd15"};
    for (int d = 0; d < 2; d++) {
        // (dfg_load_json reads Python's -Infinity / NaN: DPM lambda_min_clipped)
        cJSON *j = dfg_load_json(dfg_path("%s/manifest.json", dirs[d]));
        EXPECT_TRUE(j != NULL);
        const cJSON *cases = cJSON_GetObjectItemCaseSensitive(j, "cases");
        const cJSON *c;
        cJSON_ArrayForEach(c, cases) {
            const char *kind = json_str(c, "kind");
            if (!kind || strcmp(kind, "pipeline") != 0) continue;
            char full[160];
            snprintf(full, sizeof full, "%s/%s", dirs[d], json_str(c, "name"));
            if (!selected(argc, argv, full)) continue;
            run_case(dirs[d], c);
        }
        cJSON_Delete(j);
    }
    if (g_n_results) {
        fprintf(stderr, "\ncompute %s\n| case | latents rel-L2 | worst step rel-L2 | image "
                        "exact / within 1 / max | time |\n|---|---|---|---|---|\n",
                df_compute_name(g_compute));
        for (int i = 0; i < g_n_results; i++) {
            const case_result *r = &g_results[i];
            char steps[48] = "-", im[64] = "-";
            if (r->n_steps_checked)
                snprintf(steps, sizeof steps, "%.2e (%d)", r->worst_step, r->n_steps_checked);
            if (r->has_image)
                snprintf(im, sizeof im, "%.2f%% / %.2f%% / %d", 100 * r->img_exact,
                         100 * r->img_within1, r->img_maxdiff);
            fprintf(stderr, "| %s | %.2e | %s | %s | %.1f s | %s\n", r->name, r->rel_latents,
                    steps, im, r->seconds, r->ok ? "" : "FAIL");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fast checks (tiny sizes)

static df_status gen_latents(df_model *m, df_gen_params p, float **out, size_t *n) {
    steps_rec rec = {.cap = 64};
    p.on_step_latents = on_latents;
    p.user = &rec;
    p.decode = 0;
    df_image img = {0};
    df_status st = df_generate(m, &p, &img, NULL);
    if (st == DF_OK && rec.count > 0) {
        *n = rec.n;
        *out = malloc(rec.n * sizeof(float));
        memcpy(*out, rec.buf + (size_t)(rec.count - 1) * rec.n, rec.n * sizeof(float));
    } else {
        *out = NULL;
        *n = 0;
    }
    free(rec.buf);
    return st;
}

static int same(const float *a, const float *b, size_t n) {
    return a && b && memcmp(a, b, n * sizeof(float)) == 0;
}

static void test_validation(void) {
    df_model *m = model(0);
    df_gen_params p = df_gen_params_default();
    EXPECT_ERR(df_gen_params_validate(NULL, &p), DF_ERR_ARG, "no prompt");
    p.prompt = "x";
    EXPECT_OK(df_gen_params_validate(NULL, &p));
    p.width = 100;
    EXPECT_ERR(df_gen_params_validate(NULL, &p), DF_ERR_ARG, "multiple of 8");
    p.width = 0;
    p.height = -8;
    EXPECT_ERR(df_gen_params_validate(NULL, &p), DF_ERR_ARG, "height");
    p.height = 0;
    p.steps = 0;
    EXPECT_ERR(df_gen_params_validate(NULL, &p), DF_ERR_ARG, "steps");
    p.steps = 2;
    p.sampler = "lms";
    EXPECT_ERR(df_gen_params_validate(NULL, &p), DF_ERR_ARG, "unknown sampler 'lms'");
    p.sampler = "dpm++2m";
    EXPECT_OK(df_gen_params_validate(NULL, &p));
    p.guidance_rescale = 1.5f;
    EXPECT_ERR(df_gen_params_validate(NULL, &p), DF_ERR_ARG, "guidance rescale");
    p.guidance_rescale = 0;
    p.clip_skip = 3; // tiny text_encoder has 3 layers: at most 2
    if (m) EXPECT_ERR(df_gen_params_validate(m, &p), DF_ERR_ARG, "clip skip 3");
    p.clip_skip = 2;
    if (m) EXPECT_OK(df_gen_params_validate(m, &p));
    // generation refuses invalid parameters without touching the image
    df_image img = {0};
    p.width = 12;
    if (m) EXPECT_ERR(df_generate(m, &p, &img, NULL), DF_ERR_ARG, "width 12");
    EXPECT_TRUE(img.rgb == NULL);
}

static void test_load_errors(void) {
    df_model *m = NULL;
    EXPECT_ERR(df_model_load("/nonexistent/model", &m), DF_ERR_IO, "/nonexistent/model");
    EXPECT_TRUE(m == NULL);
    char p[4200];
    char dir[] = "/tmp/df_test_pipeline_XXXXXX";
    if (!mkdtemp(dir)) return;
    snprintf(p, sizeof p, "%s/README.md", dir); // a file that is not safetensors
    FILE *f = fopen(p, "w");
    if (f) fputs("# not a model\n", f), fclose(f);
    EXPECT_TRUE(df_model_load(p, &m) != DF_OK);
    EXPECT_TRUE(m == NULL);
    EXPECT_ERR(df_model_load(dir, &m), DF_ERR_FORMAT, "not a diffusers pipeline folder");
    snprintf(p, sizeof p, "%s/latents.safetensors", dir); // safetensors, but not a model
    df_st_writer *w = NULL;
    const float z[4] = {0};
    const int64_t shape[4] = {1, 4, 1, 1};
    EXPECT_OK(df_st_writer_create(&w));
    if (w) EXPECT_OK(df_st_writer_add(w, "latents", DF_DTYPE_F32, 4, shape, z));
    if (w) EXPECT_OK(df_st_write(w, p));
    df_st_writer_destroy(w);
    EXPECT_ERR(df_model_load(p, &m), DF_ERR_FORMAT, "not a Stable Diffusion checkpoint");
    unlink(p);
    snprintf(p, sizeof p, "%s/README.md", dir);
    unlink(p);
    rmdir(dir);
}

static void test_model_info(void) {
    df_model *x = model(0), *s = model(1);
    if (!x || !s) return;
    EXPECT_EQ_I64(df_model_arch(x), DF_ARCH_SDXL);
    EXPECT_EQ_I64(df_model_arch(s), DF_ARCH_SD1);
    int w, h;
    float g;
    const char *smp;
    df_model_defaults(x, &w, &h, &g, &smp);
    EXPECT_EQ_I64(w, 512); // tiny unet sample_size 64 x 8
    EXPECT_EQ_I64(h, 512);
    EXPECT_TRUE(g == 5.0f && strcmp(smp, "euler") == 0);
    df_model_defaults(s, &w, &h, &g, &smp);
    EXPECT_TRUE(g == 7.5f && strcmp(smp, "pndm") == 0);
    EXPECT_TRUE(strcmp(df_model_name(x), "tiny-sdxl") == 0);
}

static void test_determinism_and_paths(void) {
    df_model *m = model(0);
    if (!m) return;
    df_gen_params p = df_gen_params_default();
    p.prompt = "a red cube";
    p.width = 64;
    p.height = 96;
    p.steps = 3;
    float *a = NULL, *b = NULL, *c = NULL;
    size_t n = 0, n2 = 0;
    EXPECT_OK(gen_latents(m, p, &a, &n));
    EXPECT_EQ_I64(n, 4 * 8 * 12);
    EXPECT_OK(gen_latents(m, p, &b, &n2));
    EXPECT_TRUE(same(a, b, n)); // same seed -> bit-identical
    free(b);
    p.seed = 43;
    EXPECT_OK(gen_latents(m, p, &b, &n2));
    EXPECT_TRUE(b && !same(a, b, n)); // other seed -> other latents
    free(b);
    p.seed = 42;

    // init latent = torch.randn(seed 42) in memory reproduces the seeded run
    float noise[4 * 8 * 12];
    df_rng rng;
    df_rng_seed(&rng, 42);
    EXPECT_OK(df_sched_randn(&rng, 1, 4, 12, 8, 0, noise));
    p.init_latent_data = noise;
    EXPECT_OK(gen_latents(m, p, &b, &n2));
    EXPECT_TRUE(same(a, b, n));
    free(b);
    p.init_latent_data = NULL;

    // save_latent writes the final latents; as init latent of another run it is read back
    char f1[128];
    snprintf(f1, sizeof f1, "/tmp/df_test_pipeline_sl_%d.safetensors", (int)getpid());
    p.save_latent = f1;
    EXPECT_OK(gen_latents(m, p, &b, &n2));
    p.save_latent = NULL;
    df_st_file *sf = NULL;
    EXPECT_OK(df_st_open(f1, &sf));
    if (sf) {
        const df_st_tensor *t = df_st_find(sf, "latents");
        EXPECT_TRUE(t && t->ndim == 4 && t->shape[0] == 1 && t->shape[1] == 4 &&
                    t->shape[2] == 12 && t->shape[3] == 8 && t->dtype == DF_DTYPE_F32);
        float *r = dfg_read_f32(sf, "latents", NULL);
        EXPECT_TRUE(same(r, a, n));
        free(r);
        df_st_close(sf);
    }
    free(b);
    // init latent of the wrong size: a clear shape error
    p.init_latent = f1;
    p.width = 128;
    df_image img = {0};
    EXPECT_ERR(df_generate(m, &p, &img, NULL), DF_ERR_SHAPE, "expected [1, 4, 12, 16]");
    p.width = 64;
    p.init_latent = NULL;
    unlink(f1);

    // no CFG (scale 1): a different, valid path (batch 1)
    p.cfg_scale = 1.0f;
    EXPECT_OK(gen_latents(m, p, &b, &n2));
    EXPECT_TRUE(b && !same(a, b, n));
    free(b);
    p.cfg_scale = -1;
    // guidance_rescale changes the result
    p.guidance_rescale = 0.7f;
    EXPECT_OK(gen_latents(m, p, &b, &n2));
    EXPECT_TRUE(b && !same(a, b, n));
    free(b);
    p.guidance_rescale = 0;
    // euler_a draws per-step noise from the same generator: deterministic per seed
    p.sampler = "euler_a";
    EXPECT_OK(gen_latents(m, p, &b, &n2));
    EXPECT_OK(gen_latents(m, p, &c, &n2));
    EXPECT_TRUE(same(b, c, n) && !same(a, b, n));
    free(b);
    free(c);
    // negative prompt given vs None (zero embeddings) differ; prompt_2 matters
    p.sampler = NULL;
    p.negative_prompt = "blurry";
    EXPECT_OK(gen_latents(m, p, &b, &n2));
    EXPECT_TRUE(b && !same(a, b, n));
    free(b);
    p.negative_prompt = NULL;
    p.prompt_2 = "a watercolor";
    EXPECT_OK(gen_latents(m, p, &b, &n2));
    EXPECT_TRUE(b && !same(a, b, n));
    free(b);
    free(a);
}

static void test_image_and_infotext(void) {
    df_model *m = model(1);
    if (!m) return;
    df_gen_params p = df_gen_params_default();
    p.prompt = "a cat";
    p.negative_prompt = "dog";
    p.width = 64;
    p.height = 64;
    p.steps = 2;
    p.seed = 7;
    df_image img = {0};
    df_gen_info info;
    EXPECT_OK(df_generate(m, &p, &img, &info));
    EXPECT_EQ_I64(img.width, 64);
    EXPECT_EQ_I64(img.height, 64);
    EXPECT_TRUE(img.rgb != NULL);
    EXPECT_EQ_I64(df_image_bytes(64, 64), 64 * 64 * 3);
    EXPECT_EQ_I64(info.seed, 7);
    EXPECT_EQ_I64(info.timings.unet_calls, 3); // PNDM: steps + 1 model calls
    EXPECT_TRUE(info.timings.total_s >= info.timings.denoise_s);
    const char *want = "a cat\nNegative prompt: dog\nSteps: 2, Sampler: pndm, CFG scale: 7.5, "
                       "Seed: 7, Size: 64x64, Model: tiny-sd15";
    EXPECT_TRUE(strcmp(info.infotext, want) == 0);
    if (strcmp(info.infotext, want) != 0) fprintf(stderr, "infotext: [%s]\n", info.infotext);
    // the image is not constant (the decoder ran)
    int lo = 255, hi = 0;
    for (size_t i = 0; img.rgb && i < df_image_bytes(64, 64); i++) {
        if (img.rgb[i] < lo) lo = img.rgb[i];
        if (img.rgb[i] > hi) hi = img.rgb[i];
    }
    EXPECT_TRUE(hi > lo);
    // PNG round trip with the parameters chunk
    char f[128];
    snprintf(f, sizeof f, "/tmp/df_test_pipeline_%d.png", (int)getpid());
    EXPECT_OK(df_image_save_png(&img, f, info.infotext));
    df_image_free(&img);
    EXPECT_TRUE(img.rgb == NULL && img.width == 0);
    unlink(f);
    // random seed: reported
    p.seed = -1;
    p.decode = 0;
    EXPECT_OK(df_generate(m, &p, NULL, &info));
    EXPECT_TRUE(info.seed >= 0);
}

// The single-file checkpoint of tiny-sd15 holds the same weights (F16; the folder's F32 values
// are exactly these) and must give the same latents as the folder.
static void test_single_file(void) {
    df_model *f = model(1), *s = NULL;
    char p[4200];
    snprintf(p, sizeof p, "%s/tiny-sd15-single/tiny-sd15.safetensors", g_base);
    EXPECT_OK(df_model_load(p, &s));
    if (!f || !s) return;
    EXPECT_EQ_I64(df_model_arch(s), DF_ARCH_SD1);
    EXPECT_TRUE(strcmp(df_model_name(s), "tiny-sd15") == 0);
    df_gen_params g = df_gen_params_default();
    g.prompt = "a photo of a cat";
    g.width = 64;
    g.height = 64;
    g.steps = 2;
    float *a = NULL, *b = NULL;
    size_t n = 0, n2 = 0;
    EXPECT_OK(gen_latents(f, g, &a, &n));
    EXPECT_OK(gen_latents(s, g, &b, &n2));
    EXPECT_EQ_I64(n, n2);
    // the golden single file holds the folder's weights; df-make-model draws each layout's
    // weights from its own tensor names, so only the golden pair must agree
    if (a && b && n == n2 && dfg_dir)
        EXPECT_REL_L2(b, a, n, 1e-6, "single file vs folder latents");
    free(a);
    free(b);
    df_model_free(s);
}

// df_version; df_generate with threads > 0 puts the caller's thread settings back;
// df_model_load_ex takes the data folder (the library reads no environment).
static void test_threads_version_load_params(void) {
    EXPECT_TRUE(strcmp(df_version(), DF_VERSION_STRING) == 0);
    EXPECT_EQ_I64(df_version_number(), DF_VERSION_NUMBER);
    df_model *m = model(1);
    if (!m) return;
    df_set_threads(2);
    const int before = df_get_threads(), blas_before = openblas_get_num_threads();
    df_gen_params g = df_gen_params_default();
    g.prompt = "x";
    g.width = g.height = 64;
    g.steps = 1;
    g.decode = 0;
    g.threads = 1;
    EXPECT_OK(df_generate(m, &g, NULL, NULL));
    EXPECT_EQ_I64(df_get_threads(), before);
    EXPECT_EQ_I64(openblas_get_num_threads(), blas_before);
    // a single-file checkpoint takes its vocabulary from data_dir/clip
    char p[4200];
    snprintf(p, sizeof p, "%s/tiny-sd15-single/tiny-sd15.safetensors", g_base);
    df_load_params lp = df_load_params_default();
    lp.data_dir = "/nonexistent-df-data";
    df_model *s = NULL;
    EXPECT_ERR(df_model_load_ex(p, &lp, &s), DF_ERR_IO, "/nonexistent-df-data/clip");
    EXPECT_TRUE(s == NULL);
    lp = df_load_params_default();
    lp.weight_cache_mb = 0;
    EXPECT_OK(df_model_load_ex(p, &lp, &s));
    df_model_free(s);
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "--compute") == 0) {
        if (!df_compute_parse(argv[2], &g_compute)) {
            fprintf(stderr, "test_pipeline: unknown --compute '%s' (f32, bf16)\n", argv[2]);
            return 2;
        }
        if (g_compute == DF_COMPUTE_BF16 && !df_bf16_available()) {
            printf("test_pipeline: SKIP: --compute bf16 needs AVX512_BF16 (%s)\n",
                   df_cpu_describe());
            return 77;
        }
        argv[2] = argv[0];
        argv += 2;
        argc -= 2;
    }
    dfg_dir = df_test_golden_dir();
    static char golden_models[4200];
    if (dfg_dir) snprintf(golden_models, sizeof golden_models, "%s/models", dfg_dir);
    if (dfg_dir) g_base = golden_models;
    else if (!(g_base = df_test_models_dir())) return 1;
    int fast = argc <= 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "fast") == 0 || strcmp(argv[i], "all") == 0) fast = 1;
    if (fast) {
        test_load_errors();
        test_validation();
        test_model_info();
        test_determinism_and_paths();
        test_image_and_infotext();
        test_single_file();
        test_threads_version_load_params();
    }
    int golden = 0;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "fast") != 0) golden = 1;
    if (golden && !dfg_dir) return 77; // golden cases only: skipped (message printed)
    if (golden) golden_cases(argc, argv);
    df_model_free(g_models[0]);
    df_model_free(g_models[1]);
    return df_test_result();
}
