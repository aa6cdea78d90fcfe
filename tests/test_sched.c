// Schedulers (diffusers 0.24 numerics): golden tables and step sequences (schedulers/),
// trailing/linspace spacing, Euler-ancestral self-consistency, v_prediction consistency,
// classifier-free guidance / guidance_rescale, scheduler_config.json and error handling.
#include "sched/sched.h"

#include "core/core.h"
#include "io/safetensors.h"

#include <cjson/cJSON.h>

#include "df_golden.h"

// ---------------------------------------------------------------------------------------------
// Timesteps / sigmas for the spacings the goldens do not cover (they only use "leading").
// Computed with numpy 1.24.2 by a transcription of the diffusers 0.24 set_timesteps code of each
// class (numpy arange / linspace / round / interp), from the golden alphas_cumprod, with the
// SDXL config (steps_offset 1 only applies to "leading"). EulerAncestralDiscreteScheduler's
// set_timesteps is EulerDiscreteScheduler's: every DF_SCHED_EULER row also checks DF_SCHED_EULER_A.
typedef struct ref_case {
    df_sched_kind kind;
    df_timestep_spacing spacing;
    int n;
    int nt;
    const float *t;
    int ns;
    const float *s;
} ref_case;

static const ref_case ref_cases[] = {
    {DF_SCHED_DDIM, DF_SPACING_TRAILING, 3, 3,
        (const float[]){
            999, 666, 332},
        0, NULL},
    {DF_SCHED_PNDM, DF_SPACING_TRAILING, 3, 4,
        (const float[]){
            999, 666, 666, 332},
        0, NULL},
    {DF_SCHED_EULER, DF_SPACING_TRAILING, 3, 3,
        (const float[]){
            999, 666, 332},
        4, (const float[]){
            14.614645, 2.91830826, 0.929214716, 0}},
    {DF_SCHED_DPMPP_2M, DF_SPACING_TRAILING, 3, 3,
        (const float[]){
            999, 666, 332},
        4, (const float[]){
            14.614645, 2.91830826, 0.929214716, 0.0291675329}},
    {DF_SCHED_DDIM, DF_SPACING_LINSPACE, 3, 3,
        (const float[]){
            999, 500, 0},
        0, NULL},
    {DF_SCHED_PNDM, DF_SPACING_LINSPACE, 3, 4,
        (const float[]){
            999, 500, 500, 0},
        0, NULL},
    {DF_SCHED_EULER, DF_SPACING_LINSPACE, 3, 3,
        (const float[]){
            999, 499.5, 0},
        4, (const float[]){
            14.614645, 1.6155833, 0.0291675329, 0}},
    {DF_SCHED_DPMPP_2M, DF_SPACING_LINSPACE, 3, 3,
        (const float[]){
            999, 666, 333},
        4, (const float[]){
            14.614645, 2.91830826, 0.932358325, 0.0291675329}},
    {DF_SCHED_DDIM, DF_SPACING_TRAILING, 7, 7,
        (const float[]){
            999, 856, 713, 570, 428, 285, 142},
        0, NULL},
    {DF_SCHED_PNDM, DF_SPACING_TRAILING, 7, 8,
        (const float[]){
            999, 856, 856, 713, 570, 428, 285, 142},
        0, NULL},
    {DF_SCHED_EULER, DF_SPACING_TRAILING, 7, 7,
        (const float[]){
            999, 856, 713, 570, 428, 285, 142},
        8, (const float[]){
            14.614645, 6.66857243, 3.51387906, 2.0544765, 1.2762357, 0.790061533, 0.43806231, 0}},
    {DF_SCHED_DPMPP_2M, DF_SPACING_TRAILING, 7, 7,
        (const float[]){
            999, 856, 713, 570, 428, 285, 142},
        8, (const float[]){
            14.614645, 6.66857243, 3.51387906, 2.0544765, 1.2762357, 0.790061533, 0.43806231,
            0.0291675329}},
    {DF_SCHED_DDIM, DF_SPACING_LINSPACE, 7, 7,
        (const float[]){
            999, 832, 666, 500, 333, 166, 0},
        0, NULL},
    {DF_SCHED_PNDM, DF_SPACING_LINSPACE, 7, 8,
        (const float[]){
            999, 832, 832, 666, 500, 333, 166, 0},
        0, NULL},
    {DF_SCHED_EULER, DF_SPACING_LINSPACE, 7, 7,
        (const float[]){
            999, 832.5, 666, 499.5, 333, 166.5, 0},
        8, (const float[]){
            14.614645, 5.94891787, 2.91830826, 1.6155833, 0.932358325, 0.493553519,
            0.0291675329, 0}},
    {DF_SCHED_DPMPP_2M, DF_SPACING_LINSPACE, 7, 7,
        (const float[]){
            999, 856, 714, 571, 428, 285, 143},
        8, (const float[]){
            14.614645, 6.66857243, 3.52820444, 2.0616715, 1.2762357, 0.790061533, 0.440309584,
            0.0291675329}},
    {DF_SCHED_DDIM, DF_SPACING_TRAILING, 33, 33,
        (const float[]){
            999, 969, 938, 908, 878, 847, 817, 787, 757, 726, 696, 666, 635, 605, 575, 544, 514,
            484, 454, 423, 393, 363, 332, 302, 272, 241, 211, 181, 151, 120, 90, 60, 29},
        0, NULL},
    {DF_SCHED_PNDM, DF_SPACING_TRAILING, 33, 34,
        (const float[]){
            999, 969, 969, 938, 908, 878, 847, 817, 787, 757, 726, 696, 666, 635, 605, 575, 544,
            514, 484, 454, 423, 393, 363, 332, 302, 272, 241, 211, 181, 151, 120, 90, 60, 29},
        0, NULL},
    {DF_SCHED_EULER, DF_SPACING_TRAILING, 33, 33,
        (const float[]){
            999, 969, 938, 908, 878, 847, 817, 787, 757, 726, 696, 666, 635, 605, 575, 544, 514,
            484, 454, 423, 393, 363, 332, 302, 272, 241, 211, 181, 151, 120, 90, 60, 29},
        34, (const float[]){
            14.614645, 12.2287645, 10.2521896, 8.70775509, 7.44731665, 6.38031101, 5.52863455,
            4.81907749, 4.22398329, 3.70622945, 3.28158236, 2.91830826, 2.5958631, 2.32608485,
            2.09076405, 1.87774539, 1.69599617, 1.5343951, 1.38980675, 1.25551188, 1.13794863,
            1.03074348, 0.929214716, 0.838560402, 0.754223585, 0.672633171, 0.598091304,
            0.526975751, 0.458333135, 0.388802111, 0.321253508, 0.250681192, 0.167314321, 0}},
    {DF_SCHED_DPMPP_2M, DF_SPACING_TRAILING, 33, 33,
        (const float[]){
            999, 969, 938, 908, 878, 847, 817, 787, 757, 726, 696, 666, 635, 605, 575, 544, 514,
            484, 454, 423, 393, 363, 332, 302, 272, 241, 211, 181, 151, 120, 90, 60, 29},
        34, (const float[]){
            14.614645, 12.2287645, 10.2521896, 8.70775509, 7.44731665, 6.38031101, 5.52863455,
            4.81907749, 4.22398329, 3.70622945, 3.28158236, 2.91830826, 2.5958631, 2.32608485,
            2.09076405, 1.87774539, 1.69599617, 1.5343951, 1.38980675, 1.25551188, 1.13794863,
            1.03074348, 0.929214716, 0.838560402, 0.754223585, 0.672633171, 0.598091304,
            0.526975751, 0.458333135, 0.388802111, 0.321253508, 0.250681192, 0.167314321,
            0.0291675329}},
    {DF_SCHED_DDIM, DF_SPACING_LINSPACE, 33, 33,
        (const float[]){
            999, 968, 937, 905, 874, 843, 812, 780, 749, 718, 687, 656, 624, 593, 562, 531, 500,
            468, 437, 406, 375, 343, 312, 281, 250, 219, 187, 156, 125, 94, 62, 31, 0},
        0, NULL},
    {DF_SCHED_PNDM, DF_SPACING_LINSPACE, 33, 34,
        (const float[]){
            999, 968, 968, 937, 905, 874, 843, 812, 780, 749, 718, 687, 656, 624, 593, 562, 531,
            500, 468, 437, 406, 375, 343, 312, 281, 250, 219, 187, 156, 125, 94, 62, 31, 0},
        0, NULL},
    {DF_SCHED_EULER, DF_SPACING_LINSPACE, 33, 33,
        (const float[]){
            999, 967.78125, 936.5625, 905.34375, 874.125, 842.90625, 811.6875, 780.46875,
            749.25, 718.03125, 686.8125, 655.59375, 624.375, 593.15625, 561.9375, 530.71875,
            499.5, 468.28125, 437.0625, 405.84375, 374.625, 343.40625, 312.1875, 280.96875,
            249.75, 218.53125, 187.3125, 156.09375, 124.875, 93.65625, 62.4375, 31.21875, 0},
        34, (const float[]){
            14.614645, 12.1425285, 10.1706905, 8.58570766, 7.30199432, 6.25452614, 5.39352417,
            4.68062067, 4.08608961, 3.5867362, 3.16436553, 2.80458355, 2.49597168, 2.22941136,
            1.9975822, 1.79457414, 1.6155833, 1.45669293, 1.31468797, 1.18691432, 1.07116091,
            0.965574026, 0.868582964, 0.778837204, 0.695150971, 0.616447031, 0.541701078,
            0.469858795, 0.399702787, 0.329574227, 0.256637394, 0.174002543, 0.0291675329, 0}},
    {DF_SCHED_DPMPP_2M, DF_SPACING_LINSPACE, 33, 33,
        (const float[]){
            999, 969, 938, 908, 878, 848, 817, 787, 757, 727, 696, 666, 636, 605, 575, 545, 515,
            484, 454, 424, 394, 363, 333, 303, 272, 242, 212, 182, 151, 121, 91, 61, 30},
        34, (const float[]){
            14.614645, 12.2287645, 10.2521896, 8.70775509, 7.44731665, 6.41153479, 5.52863455,
            4.81907749, 4.22398329, 3.72159147, 3.28158236, 2.91830826, 2.60552669, 2.32608485,
            2.09076405, 1.88419282, 1.70171082, 1.5343951, 1.38980675, 1.25962937, 1.14169121,
            1.03074348, 0.932358325, 0.841474354, 0.754223585, 0.675187528, 0.600515664,
            0.529300869, 0.458333135, 0.391038358, 0.323533237, 0.253131837, 0.170351252,
            0.0291675329}},
};

// ---------------------------------------------------------------------------------------------
// helpers

static void lcg_fill(uint64_t *st, float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) {
        *st = *st * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = scale * ((float)((*st >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f);
    }
}

// max |a - b| / max |b| and rel-L2 of one tensor, folded into running maxima.
typedef struct err_acc {
    double max_norm_abs, max_rel_l2;
    int tensors, exact;
} err_acc;

static void acc_cmp(err_acc *e, const float *got, const float *want, size_t n) {
    double d = 0, m = 0;
    int exact = 1;
    for (size_t i = 0; i < n; i++) {
        const double di = fabs((double)got[i] - (double)want[i]);
        if (di > d || di != di) d = di;
        if (fabs((double)want[i]) > m) m = fabs((double)want[i]);
        exact &= got[i] == want[i];
    }
    const double na = m > 0 ? d / m : d;
    const double rl = df_rel_l2(got, want, n);
    if (na > e->max_norm_abs || na != na) e->max_norm_abs = na;
    if (rl > e->max_rel_l2 || rl != rl) e->max_rel_l2 = rl;
    e->tensors++;
    e->exact += exact;
}

// The scheduler config of a fixture model (fallback on error, counted as a failure).
static df_sched_config fixture_cfg(const char *model, df_sched_config fallback) {
    df_sched_config c;
    df_sched_kind k;
    if (df_sched_config_load_json(dfg_path("models/%s/scheduler/scheduler_config.json", model),
                                  &c, &k) != DF_OK) {
        fprintf(stderr, "%s config: %s\n", model, df_last_error());
        df_test_failures++;
        return fallback;
    }
    return c;
}

static df_sched_config sdxl_cfg(void) {
    return fixture_cfg("tiny-sdxl", df_sched_config_default_sdxl());
}

static df_sched_config sd15_cfg(void) {
    df_sched_config c;
    df_sched_config_init(&c);
    return fixture_cfg("tiny-sd15", c);
}

// ---------------------------------------------------------------------------------------------
// golden tables

static void test_tables(void) {
    df_st_file *f = NULL;
    EXPECT_OK(df_st_open(dfg_path("schedulers/tables.safetensors"), &f));
    if (!f) return;
    // manifest: init_noise_sigma per case
    cJSON *man = dfg_load_json(dfg_path("schedulers/manifest.json"));
    EXPECT_TRUE(man != NULL);
    const cJSON *values = NULL;
    if (man) {
        const cJSON *cases = cJSON_GetObjectItem(man, "cases");
        values = cJSON_GetObjectItem(cJSON_GetArrayItem(cases, 0), "values");
    }

    const df_sched_config sdxl = sdxl_cfg(), sd15 = sd15_cfg();
    df_sched *s = NULL;
    EXPECT_OK(df_sched_create(DF_SCHED_DDIM, &sdxl, 10, 0, &s));
    const df_st_tensor *tb, *ta;
    float *betas = dfg_need_f32(f, "out.betas", &tb);
    float *ac = dfg_need_f32(f, "out.alphas_cumprod", &ta);
    const size_t nb = tb->numel, na = ta->numel;
    if (s) {
        int T = 0;
        const float *b = df_sched_betas(s, &T);
        EXPECT_EQ_I64(T, (int64_t)nb);
        double rb = 0, ra = 0;
        int exb = 0, exa = 0;
        for (int i = 0; i < T && i < (int)nb; i++) {
            rb = fmax(rb, fabs((double)b[i] - betas[i]) / fabs((double)betas[i]));
            exb += b[i] == betas[i];
        }
        const float *a = df_sched_alphas_cumprod(s, &T);
        for (int i = 0; i < T && i < (int)na; i++) {
            ra = fmax(ra, fabs((double)a[i] - ac[i]) / fabs((double)ac[i]));
            exa += a[i] == ac[i];
        }
        fprintf(stderr,
                "  betas: max rel err %.3g (%d/%d bit-exact); alphas_cumprod: %.3g (%d/%d)\n", rb,
                exb, T, ra, exa, T);
        EXPECT_LE_F64(rb, 1e-6);
        EXPECT_LE_F64(ra, 1e-6);
    }
    free(betas);
    free(ac);
    df_sched_destroy(s);

    static const struct {
        const char *name;
        df_sched_kind kind;
        int pndm_cfg;
    } scheds[] = {{"ddim", DF_SCHED_DDIM, 0},
                  {"euler", DF_SCHED_EULER, 0},
                  {"dpmpp2m", DF_SCHED_DPMPP_2M, 0},
                  {"pndm", DF_SCHED_PNDM, 1}};
    static const int ns[] = {1, 4, 10, 20, 50};
    for (size_t k = 0; k < sizeof scheds / sizeof scheds[0]; k++) {
        double worst_sig = 0, worst_init = 0;
        int ts_ok = 1;
        for (size_t q = 0; q < sizeof ns / sizeof ns[0]; q++) {
            const int n = ns[q];
            char name[128];
            s = NULL;
            EXPECT_OK(df_sched_create(scheds[k].kind, scheds[k].pndm_cfg ? &sd15 : &sdxl, n, 0,
                                      &s));
            if (!s) continue;
            snprintf(name, sizeof name, "out.%s.n%d.timesteps", scheds[k].name, n);
            const df_st_tensor *e;
            float *t = dfg_need_f32(f, name, &e);
            const size_t nt = e->numel;
            EXPECT_EQ_I64(df_sched_n_calls(s), (int64_t)nt);
            for (size_t i = 0; i < nt && (int)i < df_sched_n_calls(s); i++) {
                if (df_sched_timestep(s, (int)i) != t[i]) {
                    fprintf(stderr, "  %s[%zu]: got %g want %g\n", name, i,
                            df_sched_timestep(s, (int)i), t[i]);
                    ts_ok = 0;
                }
            }
            free(t);
            int cnt = 0;
            const float *sg = df_sched_sigmas(s, &cnt);
            if (scheds[k].kind == DF_SCHED_EULER || scheds[k].kind == DF_SCHED_DPMPP_2M) {
                snprintf(name, sizeof name, "out.%s.n%d.sigmas", scheds[k].name, n);
                float *gs = dfg_need_f32(f, name, &e);
                const size_t nsg = e->numel;
                EXPECT_EQ_I64(cnt, (int64_t)nsg);
                for (size_t i = 0; sg && i < nsg && (int)i < cnt; i++) {
                    const double d = fabs((double)sg[i] - gs[i]);
                    worst_sig = fmax(worst_sig, gs[i] != 0 ? d / fabs((double)gs[i]) : d);
                }
                free(gs);
            } else {
                EXPECT_TRUE(sg == NULL && cnt == 0);
            }
            snprintf(name, sizeof name, "%s.n%d", scheds[k].name, n);
            const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(values, name),
                                                 "init_noise_sigma");
            EXPECT_TRUE(v && cJSON_IsNumber(v));
            if (v && cJSON_IsNumber(v))
                worst_init = fmax(worst_init, fabs(df_sched_init_noise_sigma(s) - v->valuedouble) /
                                                  fabs(v->valuedouble));
            df_sched_destroy(s);
        }
        fprintf(stderr, "  %-8s tables n=1,4,10,20,50: timesteps %s, sigmas max rel err %.3g, "
                        "init_noise_sigma max rel err %.3g\n",
                scheds[k].name, ts_ok ? "exact" : "MISMATCH", worst_sig, worst_init);
        EXPECT_TRUE(ts_ok);
        EXPECT_LE_F64(worst_sig, 1e-6);
        EXPECT_LE_F64(worst_init, 1e-6);
    }
    cJSON_Delete(man);
    df_st_close(f);
}

// ---------------------------------------------------------------------------------------------
// golden step sequences

static void test_steps_file(const char *file, df_sched_kind kind, const df_sched_config *cfg,
                            int n_steps) {
    df_st_file *f = NULL;
    EXPECT_OK(df_st_open(dfg_path("%s", file), &f));
    if (!f) return;
    const df_st_tensor *t0;
    float *x0 = dfg_need_f32(f, "in.sample0", &t0);
    const size_t n = t0->numel;
    int n_calls = 0;
    char name[64];
    for (;;) {
        snprintf(name, sizeof name, "in.model_output.%02d", n_calls);
        if (!df_st_find(f, name)) break;
        n_calls++;
    }
    float *x = malloc(n * sizeof(float)), *xin = malloc(n * sizeof(float));
    float *px0 = malloc(n * sizeof(float));
    err_acc e_in = {0}, e_prev = {0}, e_x0 = {0};
    // teacher-forced: each step gets the golden sample of the previous step
    df_sched *s = NULL;
    EXPECT_OK(df_sched_create(kind, cfg, n_steps, n, &s));
    if (s) {
        EXPECT_EQ_I64(df_sched_n_calls(s), n_calls);
        memcpy(x, x0, n * sizeof(float));
        for (int i = 0; i < n_calls && i < df_sched_n_calls(s); i++) {
            snprintf(name, sizeof name, "in.model_output.%02d", i);
            float *eps = dfg_need_f32(f, name, NULL);
            snprintf(name, sizeof name, "out.scaled_input.%02d", i);
            float *g_in = dfg_need_f32(f, name, NULL);
            snprintf(name, sizeof name, "out.prev_sample.%02d", i);
            float *g_prev = dfg_need_f32(f, name, NULL);
            snprintf(name, sizeof name, "out.pred_original_sample.%02d", i);
            float *g_x0 = dfg_read_f32(f, name, NULL);
            EXPECT_OK(df_sched_scale_model_input(s, i, x, xin, n));
            acc_cmp(&e_in, xin, g_in, n);
            EXPECT_OK(df_sched_step(s, i, eps, x, n, NULL, px0));
            acc_cmp(&e_prev, x, g_prev, n);
            if (g_x0) acc_cmp(&e_x0, px0, g_x0, n);
            memcpy(x, g_prev, n * sizeof(float));
            free(eps);
            free(g_in);
            free(g_prev);
            free(g_x0);
        }
        // free-running from sample0 (our own samples), final sample vs golden
        df_sched_reset(s);
        memcpy(x, x0, n * sizeof(float));
        for (int i = 0; i < n_calls; i++) {
            snprintf(name, sizeof name, "in.model_output.%02d", i);
            float *eps = dfg_need_f32(f, name, NULL);
            EXPECT_OK(df_sched_step(s, i, eps, x, n, NULL, NULL));
            free(eps);
        }
        snprintf(name, sizeof name, "out.prev_sample.%02d", n_calls - 1);
        float *g_last = dfg_need_f32(f, name, NULL);
        const double rl = df_rel_l2(x, g_last, n);
        fprintf(stderr,
                "  %-27s %2d calls: max|d|/max|g| scaled_input %.2e prev_sample %.2e "
                "pred_x0 %.2e | rel-L2 max %.2e | bit-exact %d/%d | free-run final rel-L2 %.2e\n",
                file, n_calls, e_in.max_norm_abs, e_prev.max_norm_abs, e_x0.max_norm_abs,
                fmax(e_in.max_rel_l2, fmax(e_prev.max_rel_l2, e_x0.max_rel_l2)),
                e_in.exact + e_prev.exact + e_x0.exact,
                e_in.tensors + e_prev.tensors + e_x0.tensors, rl);
        EXPECT_LE_F64(e_in.max_norm_abs, 1e-6);
        EXPECT_LE_F64(e_prev.max_norm_abs, 1e-6);
        EXPECT_LE_F64(e_x0.max_norm_abs, 1e-6);
        EXPECT_LE_F64(e_in.max_rel_l2, 1e-6);
        EXPECT_LE_F64(e_prev.max_rel_l2, 1e-6);
        EXPECT_LE_F64(e_x0.max_rel_l2, 1e-6);
        EXPECT_LE_F64(rl, 1e-5);
        if (kind == DF_SCHED_DDIM || kind == DF_SCHED_EULER) EXPECT_EQ_I64(e_x0.tensors, n_calls);
        free(g_last);
    }
    df_sched_destroy(s);
    free(x);
    free(xin);
    free(px0);
    free(x0);
    df_st_close(f);
}

static void test_steps(void) {
    const df_sched_config sdxl = sdxl_cfg(), sd15 = sd15_cfg();
    test_steps_file("schedulers/steps_ddim_n10.safetensors", DF_SCHED_DDIM, &sdxl, 10);
    test_steps_file("schedulers/steps_ddim_n50.safetensors", DF_SCHED_DDIM, &sdxl, 50);
    test_steps_file("schedulers/steps_euler_n10.safetensors", DF_SCHED_EULER, &sdxl, 10);
    test_steps_file("schedulers/steps_euler_n50.safetensors", DF_SCHED_EULER, &sdxl, 50);
    test_steps_file("schedulers/steps_dpmpp2m_n10.safetensors", DF_SCHED_DPMPP_2M, &sdxl, 10);
    test_steps_file("schedulers/steps_dpmpp2m_n20.safetensors", DF_SCHED_DPMPP_2M, &sdxl, 20);
    test_steps_file("schedulers/steps_pndm_n10.safetensors", DF_SCHED_PNDM, &sd15, 10);
    test_steps_file("schedulers/steps_pndm_n50.safetensors", DF_SCHED_PNDM, &sd15, 50);
}

// ---------------------------------------------------------------------------------------------
// trailing / linspace spacings (reference values above)

static void test_spacings(void) {
    df_sched_config c = df_sched_config_default_sdxl();
    int bad = 0, cases = 0;
    for (size_t k = 0; k < sizeof ref_cases / sizeof ref_cases[0]; k++) {
        const ref_case *r = &ref_cases[k];
        const df_sched_kind kinds[2] = {r->kind, DF_SCHED_EULER_A};
        for (int v = 0; v < (r->kind == DF_SCHED_EULER ? 2 : 1); v++) {
            c.timestep_spacing = r->spacing;
            c.skip_prk_steps = 1;
            df_sched *s = NULL;
            EXPECT_OK(df_sched_create(kinds[v], &c, r->n, 0, &s));
            if (!s) continue;
            cases++;
            int ok = df_sched_n_calls(s) == r->nt;
            for (int i = 0; ok && i < r->nt; i++) ok = df_sched_timestep(s, i) == r->t[i];
            int cnt = 0;
            const float *sg = df_sched_sigmas(s, &cnt);
            ok = ok && cnt == r->ns;
            for (int i = 0; ok && i < r->ns; i++) ok = sg[i] == r->s[i];
            if (!ok) {
                fprintf(stderr, "  spacing case %zu (%s, spacing %d, n %d) mismatch\n", k,
                        df_sched_kind_name(kinds[v]), (int)r->spacing, r->n);
                bad++;
            }
            df_sched_destroy(s);
        }
    }
    fprintf(stderr, "  trailing/linspace timesteps+sigmas: %d cases, %d mismatches\n", cases,
            bad);
    EXPECT_EQ_I64(cases, 30);
    EXPECT_EQ_I64(bad, 0);

    // trailing with n = 61: numpy's arange gives 62 values, the last rounds to timestep -1
    // (diffusers 0.24 keeps it); we drop it: 61 steps ending at 15.
    c.timestep_spacing = DF_SPACING_TRAILING;
    const df_sched_kind k61[] = {DF_SCHED_DDIM, DF_SCHED_EULER, DF_SCHED_EULER_A,
                                 DF_SCHED_DPMPP_2M, DF_SCHED_PNDM};
    for (size_t k = 0; k < sizeof k61 / sizeof k61[0]; k++) {
        df_sched *s = NULL;
        EXPECT_OK(df_sched_create(k61[k], &c, 61, 0, &s));
        if (!s) continue;
        const int nc = df_sched_n_calls(s);
        EXPECT_EQ_I64(nc, k61[k] == DF_SCHED_PNDM ? 62 : 61);
        EXPECT_TRUE(df_sched_timestep(s, 0) == 999.0f);
        EXPECT_TRUE(df_sched_timestep(s, nc - 1) == 15.0f);
        df_sched_destroy(s);
    }

    // Euler init_noise_sigma: sqrt(max^2 + 1) for leading, max sigma for linspace / trailing
    df_sched *s = NULL;
    EXPECT_OK(df_sched_create(DF_SCHED_EULER, &c, 7, 0, &s));
    if (s) EXPECT_TRUE(df_sched_init_noise_sigma(s) == df_sched_sigmas(s, NULL)[0]);
    df_sched_destroy(s);
}

// ---------------------------------------------------------------------------------------------
// Euler ancestral

static void test_euler_a(void) {
    const df_sched_config c = df_sched_config_default_sdxl();
    enum { B = 1, C = 4, H = 8, W = 8, N = B * C * H * W };
    df_sched *ea = NULL, *eu = NULL;
    EXPECT_OK(df_sched_create(DF_SCHED_EULER_A, &c, 10, N, &ea));
    EXPECT_OK(df_sched_create(DF_SCHED_EULER, &c, 10, N, &eu));
    if (!ea || !eu) {
        df_sched_destroy(ea);
        df_sched_destroy(eu);
        return;
    }
    EXPECT_TRUE(df_sched_needs_noise(ea) && !df_sched_needs_noise(eu));
    // leading: same timesteps / sigmas / init sigma as Euler
    int ca = 0, ce = 0;
    const float *sa = df_sched_sigmas(ea, &ca), *se = df_sched_sigmas(eu, &ce);
    EXPECT_EQ_I64(ca, ce);
    EXPECT_TRUE(ca == ce && memcmp(sa, se, sizeof(float) * (size_t)ca) == 0);
    EXPECT_TRUE(df_sched_init_noise_sigma(ea) == df_sched_init_noise_sigma(eu));

    static float x[N], eps[N], noise[N], zero[N], a[N], b[N], x0[N];
    uint64_t st = 99;
    lcg_fill(&st, x, N, 10.0f);
    lcg_fill(&st, eps, N, 1.0f);
    lcg_fill(&st, noise, N, 2.0f);
    // formula check per step against a double-precision reference
    double worst = 0, worst_var = 0;
    for (int i = 0; i < 10; i++) {
        const double sf = sa[i], sto = sa[i + 1];
        const double su = sqrt(sto * sto * (sf * sf - sto * sto) / (sf * sf));
        const double sd = sqrt(sto * sto - su * su);
        worst_var = fmax(worst_var, fabs(su * su + sd * sd - sto * sto));
        memcpy(a, x, sizeof x);
        memcpy(b, x, sizeof x);
        df_sched_reset(ea);
        EXPECT_OK(df_sched_step(ea, i, eps, a, N, zero, x0));
        EXPECT_OK(df_sched_step(ea, i, eps, b, N, noise, NULL));
        for (int j = 0; j < N; j++) {
            const double x0r = (double)x[j] - sf * eps[j];
            const double want = x[j] + (x[j] - x0r) / sf * (sd - sf);
            worst = fmax(worst, fabs(a[j] - want) / (fabs(want) + 1));
            worst = fmax(worst, fabs(x0[j] - x0r) / (fabs(x0r) + 1));
            // the noise enters as noise * sigma_up
            worst = fmax(worst, fabs(((double)b[j] - a[j]) - noise[j] * su) / (fabs(want) + 1));
        }
        if (i == 9) {
            // last step: sigma_to = 0 -> sigma_up = sigma_down = 0, prev = x0, noise ignored
            int same = 1;
            for (int j = 0; j < N; j++) same &= a[j] == b[j];
            EXPECT_TRUE(same);
            EXPECT_TRUE(su == 0 && sd == 0);
        }
    }
    fprintf(stderr, "  euler_a: step vs f64 formula max rel err %.2e, |su^2+sd^2-st^2| %.2e\n",
            worst, worst_var);
    EXPECT_LE_F64(worst, 2e-6);
    EXPECT_LE_F64(worst_var, 1e-12);

    // full loop with a seeded generator: deterministic, seed-dependent, noise drawn per step
    float run[3][N];
    for (int r = 0; r < 3; r++) {
        df_rng rng;
        df_rng_seed(&rng, r == 2 ? 43 : 42);
        df_sched_reset(ea);
        EXPECT_OK(df_sched_randn(&rng, B, C, H, W, 0, run[r]));
        df_sched_init_latents(ea, run[r], N);
        for (int i = 0; i < df_sched_n_calls(ea); i++) {
            EXPECT_OK(df_sched_scale_model_input(ea, i, run[r], a, N));
            for (int j = 0; j < N; j++) b[j] = 0.1f * a[j]; // a toy "model"
            EXPECT_OK(df_sched_randn(&rng, B, C, H, W, 0, noise));
            EXPECT_OK(df_sched_step(ea, i, b, run[r], N, noise, NULL));
        }
    }
    EXPECT_TRUE(memcmp(run[0], run[1], sizeof run[0]) == 0);
    EXPECT_TRUE(memcmp(run[0], run[2], sizeof run[0]) != 0);
    int finite = 1;
    for (int j = 0; j < N; j++) finite &= isfinite(run[0][j]) != 0;
    EXPECT_TRUE(finite);
    df_sched_destroy(ea);
    df_sched_destroy(eu);
}

// ---------------------------------------------------------------------------------------------
// v_prediction: a model output built from known (x0, eps) must give back x0 (and, for PNDM,
// the same step as epsilon prediction with that eps).

static void test_v_prediction(void) {
    enum { N = 512 };
    static float x0[N], eps[N], v[N], x[N], xa[N], px0[N];
    uint64_t st = 7;
    lcg_fill(&st, x0, N, 1.5f);
    lcg_fill(&st, eps, N, 1.0f);
    const df_sched_kind kinds[] = {DF_SCHED_DDIM, DF_SCHED_EULER, DF_SCHED_EULER_A,
                                   DF_SCHED_DPMPP_2M, DF_SCHED_PNDM};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        df_sched_config c = df_sched_config_default_sdxl();
        c.prediction_type = DF_PRED_V;
        df_sched *s = NULL, *se = NULL;
        EXPECT_OK(df_sched_create(kinds[k], &c, 10, N, &s));
        c.prediction_type = DF_PRED_EPSILON;
        EXPECT_OK(df_sched_create(kinds[k], &c, 10, N, &se));
        if (!s || !se) {
            df_sched_destroy(s);
            df_sched_destroy(se);
            continue;
        }
        const int euler = kinds[k] == DF_SCHED_EULER || kinds[k] == DF_SCHED_EULER_A;
        const int t = (int)df_sched_timestep(s, 0);
        const double acum = df_sched_alphas_cumprod(s, NULL)[t];
        double a = sqrt(acum), b = sqrt(1 - acum);
        if (euler || kinds[k] == DF_SCHED_DPMPP_2M) {
            const double sg = df_sched_sigmas(s, NULL)[0];
            a = 1 / sqrt(sg * sg + 1);
            b = sg * a;
        }
        for (int j = 0; j < N; j++) {
            const double xt = a * x0[j] + b * eps[j];
            v[j] = (float)(a * eps[j] - b * x0[j]);
            x[j] = (float)(euler ? xt / a : xt); // Euler samples are x_t / alpha
            xa[j] = x[j];
        }
        static float zero[N];
        memset(px0, 0, sizeof px0);
        EXPECT_OK(df_sched_step(s, 0, v, x, N, zero, px0));
        EXPECT_OK(df_sched_step(se, 0, eps, xa, N, zero, NULL));
        double e_x0 = 0, e_prev = 0, m = 0;
        for (int j = 0; j < N; j++) {
            if (kinds[k] != DF_SCHED_PNDM) e_x0 = fmax(e_x0, fabs((double)px0[j] - x0[j]));
            e_prev = fmax(e_prev, fabs((double)x[j] - xa[j]));
            m = fmax(m, fabs(xa[j]));
        }
        fprintf(stderr, "  v_prediction %-8s first step: |x0 err| %.2e, |prev - eps-pred prev| "
                        "%.2e (max |prev| %.2f)\n",
                df_sched_kind_name(kinds[k]), e_x0, e_prev, m);
        EXPECT_LE_F64(e_x0, 1e-5);
        EXPECT_LE_F64(e_prev, 2e-5 * (m + 1));
        df_sched_destroy(s);
        df_sched_destroy(se);
    }
}

// ---------------------------------------------------------------------------------------------
// DDIM class defaults (no config): linear betas, set_alpha_to_one true, clip_sample true.

static void test_ddim_defaults(void) {
    df_sched_config c;
    df_sched_config_init(&c);
    df_sched *s = NULL;
    EXPECT_OK(df_sched_create(DF_SCHED_DDIM, &c, 10, 0, &s));
    if (!s) return;
    EXPECT_TRUE(df_sched_timestep(s, 0) == 900.0f && df_sched_timestep(s, 9) == 0.0f);
    EXPECT_TRUE(fabsf(df_sched_betas(s, NULL)[0] - 0.0001f) < 1e-9f);
    EXPECT_TRUE(fabsf(df_sched_betas(s, NULL)[999] - 0.02f) < 1e-9f);
    enum { N = 64 };
    float x[N], eps[N], px0[N];
    uint64_t st = 3;
    lcg_fill(&st, x, N, 3.0f);
    lcg_fill(&st, eps, N, 1.0f);
    // last step: alpha_prev = 1 -> prev_sample == clamp(x0, -1, 1)
    EXPECT_OK(df_sched_step(s, 9, eps, x, N, NULL, px0));
    int ok = 1, clipped = 0;
    for (int j = 0; j < N; j++) {
        ok &= x[j] == px0[j] && px0[j] >= -1.0f && px0[j] <= 1.0f;
        clipped += fabsf(px0[j]) == 1.0f;
    }
    EXPECT_TRUE(ok);
    EXPECT_TRUE(clipped > 0);
    df_sched_destroy(s);
}

// ---------------------------------------------------------------------------------------------
// classifier-free guidance

static void test_cfg(void) {
    enum { B = 2, P = 300, N = B * P };
    static float u[N], c[N], o[N], o2[N], ref[N];
    uint64_t st = 11;
    lcg_fill(&st, u, N, 1.0f);
    lcg_fill(&st, c, N, 1.3f);
    const float g = 5.0f;
    EXPECT_OK(df_cfg_combine(o, u, c, B, P, g, 0.0f));
    int exact = 1;
    for (int j = 0; j < N; j++) exact &= o[j] == u[j] + g * (c[j] - u[j]);
    EXPECT_TRUE(exact);

    const float phis[] = {0.7f, 1.0f};
    for (int q = 0; q < 2; q++) {
        const float phi = phis[q];
        EXPECT_OK(df_cfg_combine(o, u, c, B, P, g, phi));
        double worst = 0;
        for (int b = 0; b < B; b++) {
            // f64 reference of rescale_noise_cfg
            double mc = 0, mo = 0, sc = 0, so = 0;
            double cf[P];
            for (int j = 0; j < P; j++) {
                cf[j] = (double)u[b * P + j] + g * ((double)c[b * P + j] - u[b * P + j]);
                mc += c[b * P + j];
                mo += cf[j];
            }
            mc /= P;
            mo /= P;
            for (int j = 0; j < P; j++) {
                sc += (c[b * P + j] - mc) * (c[b * P + j] - mc);
                so += (cf[j] - mo) * (cf[j] - mo);
            }
            const double ratio = sqrt(sc / (P - 1)) / sqrt(so / (P - 1));
            double m2 = 0, s2 = 0;
            for (int j = 0; j < P; j++) {
                ref[b * P + j] = (float)(phi * cf[j] * ratio + (1 - phi) * cf[j]);
                worst = fmax(worst, fabs((double)o[b * P + j] - ref[b * P + j]) /
                                        (fabs(ref[b * P + j]) + 1e-3));
                m2 += o[b * P + j];
            }
            if (phi == 1.0f) {
                m2 /= P;
                for (int j = 0; j < P; j++) s2 += (o[b * P + j] - m2) * (o[b * P + j] - m2);
                EXPECT_LE_F64(fabs(sqrt(s2 / (P - 1)) - sqrt(sc / (P - 1))), 1e-5);
            }
        }
        fprintf(stderr, "  cfg guidance_rescale %.1f: max rel err vs f64 %.2e\n", phi, worst);
        EXPECT_LE_F64(worst, 1e-5);
        // aliasing: out == eps_c and out == eps_u give the same result
        memcpy(o2, c, sizeof c);
        EXPECT_OK(df_cfg_combine(o2, u, o2, B, P, g, phi));
        EXPECT_TRUE(memcmp(o, o2, sizeof o) == 0);
        memcpy(o2, u, sizeof u);
        EXPECT_OK(df_cfg_combine(o2, o2, c, B, P, g, phi));
        EXPECT_TRUE(memcmp(o, o2, sizeof o) == 0);
    }
    EXPECT_ERR(df_cfg_combine(o, u, c, N, 1, g, 0.5f), DF_ERR_ARG, "at least 2");
}

// ---------------------------------------------------------------------------------------------
// noise layout

static void test_randn_layout(void) {
    enum { B = 2, C = 4, H = 3, W = 5, N = B * C * H * W };
    float a[N], b[N];
    df_rng r1, r2;
    df_rng_seed(&r1, 5);
    df_rng_seed(&r2, 5);
    EXPECT_OK(df_sched_randn(&r1, B, C, H, W, 0, a));
    EXPECT_OK(df_sched_randn(&r2, B, C, H, W, 1, b));
    int ok = 1;
    for (int n = 0; n < B; n++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < H * W; p++)
                ok &= a[(n * C + c) * H * W + p] == b[(n * H * W + p) * C + c];
    EXPECT_TRUE(ok);
    // both continue the stream identically
    float a2[16], b2[16];
    df_rng_randn(&r1, a2, 16);
    df_rng_randn(&r2, b2, 16);
    EXPECT_TRUE(memcmp(a2, b2, sizeof a2) == 0);
    EXPECT_ERR(df_sched_randn(&r1, 0, C, H, W, 0, a), DF_ERR_ARG, "invalid latent shape");
}

// ---------------------------------------------------------------------------------------------
// config JSON and errors

static void test_config_and_errors(void) {
    df_sched_config c;
    df_sched_kind k = DF_SCHED_NONE;
    EXPECT_OK(df_sched_config_load_json(
        dfg_path("models/tiny-sdxl/scheduler/scheduler_config.json"), &c, &k));
    EXPECT_EQ_I64(k, DF_SCHED_EULER);
    EXPECT_EQ_I64(c.beta_schedule, DF_BETA_SCALED_LINEAR);
    EXPECT_EQ_I64(c.timestep_spacing, DF_SPACING_LEADING);
    EXPECT_EQ_I64(c.steps_offset, 1);
    EXPECT_EQ_I64(c.set_alpha_to_one, 0);
    EXPECT_EQ_I64(c.solver_order, 0); // absent: class default
    EXPECT_TRUE(c.beta_start == 0.00085 && c.beta_end == 0.012);
    EXPECT_OK(df_sched_config_load_json(
        dfg_path("models/tiny-sd15/scheduler/scheduler_config.json"), &c, &k));
    EXPECT_EQ_I64(k, DF_SCHED_PNDM);
    EXPECT_EQ_I64(c.skip_prk_steps, 1);

    EXPECT_OK(df_sched_config_parse_json("{\"_class_name\": \"LMSDiscreteScheduler\"}", "t", &c,
                                         &k));
    EXPECT_EQ_I64(k, DF_SCHED_NONE);
    EXPECT_OK(df_sched_config_parse_json(
        "{\"_class_name\": \"DPMSolverMultistepScheduler\", \"algorithm_type\": \"dpmsolver++\", "
        "\"solver_type\": \"heun\", \"solver_order\": 2, \"prediction_type\": \"v_prediction\", "
        "\"timestep_spacing\": \"trailing\", \"lambda_min_clipped\": -5.1, \"foo\": [1, 2]}",
        "t", &c, &k));
    EXPECT_EQ_I64(k, DF_SCHED_DPMPP_2M);
    EXPECT_EQ_I64(c.solver_type, DF_DPM_SOLVER_HEUN);
    EXPECT_EQ_I64(c.prediction_type, DF_PRED_V);
    EXPECT_EQ_I64(c.timestep_spacing, DF_SPACING_TRAILING);

    // Python-json tokens (diffusers writes lambda_min_clipped: -Infinity)
    EXPECT_OK(df_sched_config_parse_json(
        "{\"_class_name\": \"DPMSolverMultistepScheduler\", \"lambda_min_clipped\": -Infinity, "
        "\"x\": NaN, \"y\": \"Infinity \\\" NaN\", \"beta_end\": 0.02}",
        "t", &c, &k));
    EXPECT_TRUE(isinf(c.lambda_min_clipped) && c.lambda_min_clipped < 0);
    EXPECT_TRUE(c.beta_end == 0.02);
    {
        df_sched *d = NULL;
        EXPECT_OK(df_sched_create(k, &c, 10, 0, &d));
        if (d) EXPECT_TRUE(df_sched_timestep(d, 0) == 999.0f); // linspace default, unclipped
        df_sched_destroy(d);
    }
    // lambda_min_clipped -2 clips the 123 highest timesteps (lambda(999) = -2.68): with linspace
    // (numpy replica) timesteps 876, 788, ..., 88
    c.lambda_min_clipped = -2.0;
    c.beta_schedule = DF_BETA_SCALED_LINEAR;
    c.beta_start = 0.00085;
    c.beta_end = 0.012;
    {
        df_sched *d = NULL;
        EXPECT_OK(df_sched_create(k, &c, 10, 0, &d));
        if (d) {
            EXPECT_TRUE(df_sched_timestep(d, 0) == 876.0f);
            EXPECT_TRUE(df_sched_timestep(d, 1) == 788.0f);
            EXPECT_TRUE(df_sched_timestep(d, 9) == 88.0f);
        }
        df_sched_destroy(d);
    }
    EXPECT_ERR(df_sched_config_parse_json("{", "bad.json", &c, &k), DF_ERR_FORMAT,
               "bad.json: invalid JSON");
    EXPECT_ERR(df_sched_config_parse_json("[1]", "bad.json", &c, &k), DF_ERR_FORMAT,
               "not a JSON object");
    EXPECT_ERR(df_sched_config_parse_json("{\"steps_offset\": \"one\"}", "x.json", &c, &k),
               DF_ERR_FORMAT, "\"steps_offset\" must be a number");
    EXPECT_ERR(df_sched_config_parse_json("{\"steps_offset\": 1.5}", "x.json", &c, &k),
               DF_ERR_FORMAT, "steps_offset");
    EXPECT_ERR(df_sched_config_parse_json("{\"timestep_spacing\": \"sideways\"}", "x.json", &c,
                                          &k),
               DF_ERR_FORMAT, "\"timestep_spacing\" = \"sideways\" is not supported");
    EXPECT_ERR(df_sched_config_parse_json("{\"clip_sample\": 1}", "x.json", &c, &k),
               DF_ERR_FORMAT, "\"clip_sample\" must be true or false");
    EXPECT_ERR(df_sched_config_load_json("/nonexistent/scheduler_config.json", &c, &k),
               DF_ERR_IO, "/nonexistent/scheduler_config.json: cannot open");

    // kinds
    df_sched_kind kk;
    EXPECT_OK(df_sched_kind_parse("dpm++2m", &kk));
    EXPECT_EQ_I64(kk, DF_SCHED_DPMPP_2M);
    EXPECT_OK(df_sched_kind_parse("euler_a", &kk));
    EXPECT_EQ_I64(kk, DF_SCHED_EULER_A);
    for (int q = DF_SCHED_DDIM; q < DF_SCHED_KIND_COUNT; q++) {
        EXPECT_OK(df_sched_kind_parse(df_sched_kind_name((df_sched_kind)q), &kk));
        EXPECT_EQ_I64(kk, q);
    }
    EXPECT_ERR(df_sched_kind_parse("lms", &kk), DF_ERR_ARG, "unknown scheduler \"lms\"");

    // create errors
    const df_sched_config sdxl = df_sched_config_default_sdxl();
    df_sched *s = (df_sched *)&c; // must be reset to NULL on failure
    EXPECT_ERR(df_sched_create(DF_SCHED_NONE, &sdxl, 10, 0, &s), DF_ERR_ARG,
               "unknown scheduler kind");
    EXPECT_TRUE(s == NULL);
    EXPECT_ERR(df_sched_create(DF_SCHED_DDIM, &sdxl, 0, 0, &s), DF_ERR_ARG,
               "number of inference steps must be > 0, got 0");
    EXPECT_ERR(df_sched_create(DF_SCHED_EULER, &sdxl, -3, 0, &s), DF_ERR_ARG, "got -3");
    EXPECT_ERR(df_sched_create(DF_SCHED_DDIM, &sdxl, 1001, 0, &s), DF_ERR_ARG,
               "exceeds num_train_timesteps 1000");
    df_sched_config p = sdxl;
    EXPECT_ERR(df_sched_create(DF_SCHED_PNDM, &p, 1000, 0, &s), DF_ERR_ARG,
               "timestep 1000 outside [0, 999]");
    p.skip_prk_steps = -1;
    EXPECT_ERR(df_sched_create(DF_SCHED_PNDM, &p, 10, 0, &s), DF_ERR_UNSUPPORTED,
               "skip_prk_steps");
    p = sdxl;
    p.use_karras_sigmas = 1;
    EXPECT_ERR(df_sched_create(DF_SCHED_EULER, &p, 10, 0, &s), DF_ERR_UNSUPPORTED,
               "use_karras_sigmas");
    p = sdxl;
    p.prediction_type = DF_PRED_SAMPLE;
    EXPECT_ERR(df_sched_create(DF_SCHED_DDIM, &p, 10, 0, &s), DF_ERR_UNSUPPORTED, "sample");
    p = sdxl;
    p.solver_order = 3;
    EXPECT_ERR(df_sched_create(DF_SCHED_DPMPP_2M, &p, 10, 0, &s), DF_ERR_UNSUPPORTED,
               "solver_order 3");
    p = sdxl;
    p.beta_start = -1;
    EXPECT_ERR(df_sched_create(DF_SCHED_DDIM, &p, 10, 0, &s), DF_ERR_ARG, "beta_start");
    p = sdxl;
    p.has_trained_betas = 1;
    EXPECT_ERR(df_sched_create(DF_SCHED_DDIM, &p, 10, 0, &s), DF_ERR_UNSUPPORTED,
               "trained_betas");
    EXPECT_TRUE(s == NULL);

    // step errors
    enum { N = 16 };
    float x[N] = {0}, e[N] = {0};
    EXPECT_OK(df_sched_create(DF_SCHED_DPMPP_2M, &sdxl, 10, N, &s));
    if (s) {
        EXPECT_ERR(df_sched_step(s, 1, e, x, N, NULL, NULL), DF_ERR_ARG,
                   "expected call 0, got 1");
        EXPECT_ERR(df_sched_step(s, 0, e, x, N + 1, NULL, NULL), DF_ERR_SHAPE,
                   "17 elements, expected 16");
        EXPECT_ERR(df_sched_step(s, 10, e, x, N, NULL, NULL), DF_ERR_ARG, "outside [0, 10)");
        EXPECT_OK(df_sched_step(s, 0, e, x, N, NULL, NULL));
        EXPECT_ERR(df_sched_scale_model_input(s, -1, x, x, N), DF_ERR_ARG, "call index -1");
        df_sched_destroy(s);
    }
    // numel 0 at create: allocated at the first step
    EXPECT_OK(df_sched_create(DF_SCHED_PNDM, &sdxl, 4, 0, &s));
    if (s) {
        EXPECT_EQ_I64(df_sched_n_calls(s), 5);
        for (int i = 0; i < 5; i++) EXPECT_OK(df_sched_step(s, i, e, x, N, NULL, NULL));
        df_sched_destroy(s);
    }
    EXPECT_OK(df_sched_create(DF_SCHED_EULER_A, &sdxl, 4, N, &s));
    if (s) {
        EXPECT_ERR(df_sched_step(s, 0, e, x, N, NULL, NULL), DF_ERR_ARG, "needs noise");
        df_sched_destroy(s);
    }
    df_sched_destroy(NULL);
}

// PNDM / DDIM with "leading" spacing and steps_offset 1 (SD 1.5's config): 1000 steps would put
// timestep (1000-1)*1 + 1 = 1000 outside [0, 999] (diffusers computes the same list, then
// indexes alphas_cumprod[1000]); that is a clear error naming the largest step count, 999 steps
// run, and their timesteps are diffusers' plms_timesteps: 999, 998, 998, 997, ..., 1.
static void test_leading_max_steps(void) {
    df_sched_config c;
    df_sched_config_init(&c);
    c.num_train_timesteps = 1000;
    c.beta_schedule = DF_BETA_SCALED_LINEAR;
    c.beta_start = 0.00085;
    c.beta_end = 0.012;
    c.timestep_spacing = DF_SPACING_LEADING;
    c.steps_offset = 1;
    c.skip_prk_steps = 1;
    df_sched *s = NULL;
    EXPECT_ERR(df_sched_create(DF_SCHED_PNDM, &c, 1000, 0, &s), DF_ERR_ARG, "at most 999 steps");
    EXPECT_TRUE(s == NULL);
    EXPECT_ERR(df_sched_create(DF_SCHED_DDIM, &c, 1000, 0, &s), DF_ERR_ARG, "at most 999 steps");
    EXPECT_OK(df_sched_create(DF_SCHED_PNDM, &c, 999, 0, &s));
    if (s) {
        const int n = df_sched_n_calls(s);
        EXPECT_EQ_I64(n, 1000);
        EXPECT_TRUE(df_sched_timestep(s, 0) == 999.0f && df_sched_timestep(s, 1) == 998.0f &&
                    df_sched_timestep(s, 2) == 998.0f && df_sched_timestep(s, 3) == 997.0f);
        EXPECT_TRUE(df_sched_timestep(s, n - 1) == 1.0f);
        for (int i = 0; i < n; i++)
            EXPECT_TRUE(df_sched_timestep(s, i) >= 0 && df_sched_timestep(s, i) <= 999);
    }
    df_sched_destroy(s);
    s = NULL;
    // 500 steps: ratio 2, largest timestep 998 + 1 = 999 (in range)
    EXPECT_OK(df_sched_create(DF_SCHED_PNDM, &c, 500, 0, &s));
    if (s) EXPECT_TRUE(df_sched_timestep(s, 0) == 999.0f);
    df_sched_destroy(s);
    // without steps_offset 1000 steps are fine (timesteps 999 .. 0)
    c.steps_offset = 0;
    s = NULL;
    EXPECT_OK(df_sched_create(DF_SCHED_PNDM, &c, 1000, 0, &s));
    if (s) EXPECT_TRUE(df_sched_timestep(s, 0) == 999.0f);
    df_sched_destroy(s);
}

int main(void) {
    test_cfg();
    test_leading_max_steps();
    test_randn_layout();
    dfg_dir = df_test_golden_dir();
    if (!dfg_dir) {
        // golden-free parts only
        test_euler_a();
        test_v_prediction();
        test_ddim_defaults();
        test_spacings();
        fprintf(stderr, "golden comparisons skipped (tables, step sequences, config files)\n");
        return df_test_result();
    }
    test_config_and_errors();
    test_tables();
    test_steps();
    test_spacings();
    test_euler_a();
    test_v_prediction();
    test_ddim_defaults();
    return df_test_result();
}
