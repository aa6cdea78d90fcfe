// scheduler_config.json reader (diffusers ConfigMixin keys; unknown keys ignored).
#include "sched/sched.h"

#include "core/core.h"
#include "core/textfile.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Typed optional fields (absent / null keep *out). The model configs share io/json_util.h; sched
// may include only core (docs/design.md), hence these local getters with sched's own ranges/enums.
static df_status get_bool(const cJSON *root, const char *key, const char *what, int *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) return DF_OK;
    DF_FAIL_IF(!cJSON_IsBool(it), DF_ERR_FORMAT, "%s: \"%s\" must be true or false", what, key);
    *out = cJSON_IsTrue(it) ? 1 : 0;
    return DF_OK;
}

static df_status get_int(const cJSON *root, const char *key, const char *what, int lo, int hi,
                         int *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) return DF_OK;
    DF_FAIL_IF(!cJSON_IsNumber(it), DF_ERR_FORMAT, "%s: \"%s\" must be a number", what, key);
    const double v = it->valuedouble;
    DF_FAIL_IF(v != floor(v) || v < lo || v > hi, DF_ERR_FORMAT,
               "%s: \"%s\" = %g must be an integer in [%d, %d]", what, key, v, lo, hi);
    *out = (int)v;
    return DF_OK;
}

static df_status get_num(const cJSON *root, const char *key, const char *what, double *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) return DF_OK;
    DF_FAIL_IF(!cJSON_IsNumber(it), DF_ERR_FORMAT, "%s: \"%s\" must be a number", what, key);
    *out = it->valuedouble;
    return DF_OK;
}

// String key mapped through a table of (name, value); absent/null keeps *out.
typedef struct {
    const char *name;
    int value;
} str_map;

static df_status get_enum(const cJSON *root, const char *key, const char *what,
                          const str_map *map, int nmap, int *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) return DF_OK;
    DF_FAIL_IF(!cJSON_IsString(it), DF_ERR_FORMAT, "%s: \"%s\" must be a string", what, key);
    for (int i = 0; i < nmap; i++) {
        if (strcmp(it->valuestring, map[i].name) == 0) {
            *out = map[i].value;
            return DF_OK;
        }
    }
    char list[256] = "";
    for (int i = 0; i < nmap; i++) {
        if (i) strncat(list, ", ", sizeof list - strlen(list) - 1);
        strncat(list, map[i].name, sizeof list - strlen(list) - 1);
    }
    return DF_ERROR(DF_ERR_FORMAT, "%s: \"%s\" = \"%s\" is not supported (expected %s)", what,
                    key, it->valuestring, list);
}

df_status df_sched_config_parse_json(const char *json, const char *what, df_sched_config *cfg,
                                     df_sched_kind *kind) {
    DF_FAIL_IF(!json || !cfg, DF_ERR_ARG, "NULL argument");
    if (!what) what = "scheduler config";
    if (kind) *kind = DF_SCHED_NONE;
    df_sched_config_init(cfg);
    char *clean = df_json_from_python(json);
    DF_FAIL_IF(!clean, DF_ERR_NOMEM, "%s: JSON copy", what);
    cJSON *root = cJSON_Parse(clean);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        df_status e = DF_ERROR(DF_ERR_FORMAT, "%s: invalid JSON near \"%.20s\"", what,
                               at ? at : "");
        free(clean);
        return e;
    }
    free(clean);
    df_status st = DF_OK;
    if (!cJSON_IsObject(root)) {
        st = DF_ERROR(DF_ERR_FORMAT, "%s: top level is not a JSON object", what);
        goto done;
    }
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(root, "_class_name");
    if (cls && cJSON_IsString(cls) && kind) *kind = df_sched_kind_from_class(cls->valuestring);

    static const str_map betas[] = {{"linear", DF_BETA_LINEAR},
                                    {"scaled_linear", DF_BETA_SCALED_LINEAR},
                                    {"squaredcos_cap_v2", DF_BETA_SQUAREDCOS_CAP_V2}};
    static const str_map spacing[] = {{"leading", DF_SPACING_LEADING},
                                      {"trailing", DF_SPACING_TRAILING},
                                      {"linspace", DF_SPACING_LINSPACE}};
    static const str_map pred[] = {{"epsilon", DF_PRED_EPSILON},
                                   {"v_prediction", DF_PRED_V},
                                   {"sample", DF_PRED_SAMPLE}};
    static const str_map algo[] = {{"dpmsolver++", DF_DPM_ALGO_DPMSOLVER_PP},
                                   {"dpmsolver", DF_DPM_ALGO_DPMSOLVER}};
    static const str_map solver[] = {{"midpoint", DF_DPM_SOLVER_MIDPOINT},
                                      {"heun", DF_DPM_SOLVER_HEUN}};
    static const str_map interp[] = {{"linear", 0}, {"log_linear", 1}};
    static const str_map ttype[] = {{"discrete", 0}, {"continuous", 1}};
    int e;
#define ENUM(key, map, field, type)                                                            \
    do {                                                                                       \
        e = (int)cfg->field;                                                                   \
        st = get_enum(root, key, what, map, (int)(sizeof map / sizeof map[0]), &e);            \
        if (st != DF_OK) goto done;                                                            \
        cfg->field = (type)e;                                                                  \
    } while (0)
#define CHECK(expr)                                                                            \
    do {                                                                                       \
        st = (expr);                                                                           \
        if (st != DF_OK) goto done;                                                            \
    } while (0)

    CHECK(get_int(root, "num_train_timesteps", what, 2, 100000, &cfg->num_train_timesteps));
    CHECK(get_num(root, "beta_start", what, &cfg->beta_start));
    CHECK(get_num(root, "beta_end", what, &cfg->beta_end));
    ENUM("beta_schedule", betas, beta_schedule, df_beta_schedule);
    ENUM("prediction_type", pred, prediction_type, df_prediction_type);
    ENUM("timestep_spacing", spacing, timestep_spacing, df_timestep_spacing);
    CHECK(get_int(root, "steps_offset", what, 0, 100000, &cfg->steps_offset));
    CHECK(get_bool(root, "set_alpha_to_one", what, &cfg->set_alpha_to_one));
    CHECK(get_bool(root, "clip_sample", what, &cfg->clip_sample));
    CHECK(get_num(root, "clip_sample_range", what, &cfg->clip_sample_range));
    CHECK(get_bool(root, "skip_prk_steps", what, &cfg->skip_prk_steps));
    CHECK(get_int(root, "solver_order", what, 1, 3, &cfg->solver_order));
    ENUM("algorithm_type", algo, algorithm_type, df_dpm_algorithm);
    ENUM("solver_type", solver, solver_type, df_dpm_solver_type);
    CHECK(get_bool(root, "lower_order_final", what, &cfg->lower_order_final));
    CHECK(get_bool(root, "euler_at_final", what, &cfg->euler_at_final));
    CHECK(get_num(root, "lambda_min_clipped", what, &cfg->lambda_min_clipped));
    CHECK(get_bool(root, "use_karras_sigmas", what, &cfg->use_karras_sigmas));
    CHECK(get_bool(root, "thresholding", what, &cfg->thresholding));
    CHECK(get_bool(root, "rescale_betas_zero_snr", what, &cfg->rescale_betas_zero_snr));
    e = 0;
    ENUM("interpolation_type", interp, interpolation_log_linear, int);
    ENUM("timestep_type", ttype, timestep_type_continuous, int);
    {
        const cJSON *tb = cJSON_GetObjectItemCaseSensitive(root, "trained_betas");
        if (tb && !cJSON_IsNull(tb)) cfg->has_trained_betas = 1;
    }
#undef ENUM
#undef CHECK
done:
    cJSON_Delete(root);
    return st;
}

df_status df_sched_config_load_json(const char *path, df_sched_config *cfg, df_sched_kind *kind) {
    DF_FAIL_IF(!path || !cfg, DF_ERR_ARG, "NULL argument");
    char *buf = NULL;
    DF_TRY(df_read_text_file(path, (size_t)16 << 20, 0, &buf, NULL));
    df_status st = df_sched_config_parse_json(buf, path, cfg, kind);
    free(buf);
    return st;
}
