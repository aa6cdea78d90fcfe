// The programs' environment variables (see tool_env.h).
#include "tool_env.h"

#include <stdlib.h>
#include <string.h>

static int set(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

int df_tool_launched_by_mpi(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK",
                                       "PMI_SIZE", "MV2_COMM_WORLD_SIZE", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return 1;
    }
    return set("DF_FORCE_MPI");
}

df_load_params df_tool_load_params(void) {
    df_load_params lp = df_load_params_default();
    const char *d = getenv("DF_DATA_DIR");
    if (d && *d) lp.data_dir = d;
    const char *c = getenv("DF_UNET_CACHE_MB");
    if (c && *c) {
        char *end = NULL;
        long long mb = strtoll(c, &end, 10);
        if (end && !*end && mb >= 0) lp.weight_cache_mb = mb;
    }
    if (set("DF_UNET_PROFILE")) lp.unet_profile = 1;
    return lp;
}
