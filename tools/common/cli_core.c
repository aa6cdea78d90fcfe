// The command-line core of the programs (see cli_core.h).
#include "cli_core.h"

#include "faults.h"
#include "tool_env.h"

#include <stdio.h>
#include <string.h>

static const char *g_prog = "distrifuse";
static int g_rank = 0, g_size = 1;
static void (*g_cleanup)(void);

cli_common cli_common_defaults(void) {
    cli_common c;
    memset(&c, 0, sizeof c);
    c.gen = df_gen_params_default();
    c.gen.check_finite = CLI_CHECK_FINITE_DEFAULT;
    c.pp = df_parallel_params_default();
    c.conv_algo = df_load_params_default().conv_algo; // DF_CONV_ALGO_DEFAULT (build option)
    return c;
}

// "--comm-progress thread" needs MPI_THREAD_MULTIPLE, chosen before MPI starts (and before the
// table parser runs): look for it in argv.
static int wants_thread_progress(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--comm-progress=thread") == 0) return 1;
        if (strcmp(argv[i], "--comm-progress") == 0 && i + 1 < argc &&
            strcmp(argv[i + 1], "thread") == 0)
            return 1;
    }
    return 0;
}

int cli_start(const char *prog, int *argc, char ***argv) {
    g_prog = prog;
    // MPI first (it may consume launcher arguments); a plain process runs without MPI.
    if (df_parallel_init(argc, argv, wants_thread_progress(*argc, *argv),
                         df_tool_launched_by_mpi()) != DF_OK) {
        cli_print_runtime_error("cannot initialise MPI");
        return CLI_EXIT_RUNTIME;
    }
    g_rank = df_world_rank();
    g_size = df_world_size();
    char pre[32] = "";
    if (g_size > 1) snprintf(pre, sizeof pre, "[r%d/%d] ", g_rank, g_size);
    df_tool_faults_init(prog, pre); // SIGBUS on a model file changed while mapped
    return 0;
}

int cli_rank(void) { return g_rank; }
int cli_size(void) { return g_size; }
const char *cli_prog(void) { return g_prog; }
void cli_on_finish(void (*fn)(void)) { g_cleanup = fn; }

int cli_finish(int rc) {
    if (g_cleanup) g_cleanup();
    g_cleanup = NULL;
    df_parallel_finalize();
    return rc;
}

int cli_usage_error(const char *msg) {
    if (g_rank == 0) fprintf(stderr, "%s: error: %s\n", g_prog, msg);
    return cli_finish(CLI_EXIT_USAGE);
}

void cli_print_runtime_error(const char *what) {
    char pre[32] = "";
    if (g_size > 1) snprintf(pre, sizeof pre, "[r%d/%d] ", g_rank, g_size);
    fprintf(stderr, "%s%s: error: %s%s%s\n", pre, g_prog, what, *df_last_error() ? ": " : "",
            df_last_error());
}

int cli_agree_failure(int failed, const char *what) {
    int worst = failed ? g_size - g_rank : 0; // max over ranks -> lowest failing rank
    if (g_size > 1 && df_world_allreduce_max_i32(&worst, 1) != DF_OK) {
        cli_print_runtime_error("MPI failure");
        df_parallel_abort(CLI_EXIT_RUNTIME);
    }
    if (!worst) return 0;
    if (failed && g_rank == g_size - worst) cli_print_runtime_error(what);
    return 1;
}

int cli_runtime_error_abort(const char *what) {
    cli_print_runtime_error(what);
    if (g_size > 1) df_parallel_abort(CLI_EXIT_RUNTIME);
    return cli_finish(CLI_EXIT_RUNTIME);
}

int cli_core_finish(cli_common *c, const cli_opt *opts, int n_opts, const int *seen, char *err,
                    size_t cap) {
#define GIVEN(name) (cli_find(opts, n_opts, name) >= 0 && seen[cli_find(opts, n_opts, name)])
    if (GIVEN("cfg-scale") && c->gen.cfg_scale < 0) {
        snprintf(err, cap, "--cfg-scale must be >= 0");
        return -1;
    }
    if (GIVEN("width") && c->gen.width <= 0) {
        snprintf(err, cap, "--width must be a positive multiple of 8");
        return -1;
    }
    if (GIVEN("height") && c->gen.height <= 0) {
        snprintf(err, cap, "--height must be a positive multiple of 8");
        return -1;
    }
#undef GIVEN
    if (c->pp.warmup_steps < 0) {
        snprintf(err, cap, "--warmup-steps must be >= 0");
        return -1;
    }
    if (c->gen.threads < 0) {
        snprintf(err, cap, "--threads must be >= 0 (0 = all cores)");
        return -1;
    }
    if (c->pp.comm_checkpoint < 1) {
        snprintf(err, cap, "--comm-checkpoint must be >= 1");
        return -1;
    }
    if (!(c->rank_timeout >= 0)) {
        snprintf(err, cap, "--rank-timeout must be >= 0 (0 = off)");
        return -1;
    }
    c->pp.rank_timeout_s = c->rank_timeout;
    if (c->band_weights && !df_parallel_band_weights_parse(c->band_weights, &c->pp, err, cap))
        return -1;
    if (df_gen_params_validate(NULL, &c->gen) != DF_OK) {
        snprintf(err, cap, "%s", df_last_error());
        return -1;
    }
    return 0;
}

// --rank-timeout: every rank's watchdog hears of each finished step; after the last one it is
// disarmed (rank 0 then decodes alone while the others wait).
static void on_heartbeat(void *user, int step, int n, double elapsed) {
    (void)user;
    (void)elapsed;
    df_tool_watchdog_beat();
    if (step >= n) df_tool_watchdog_disarm();
}

int cli_watchdog_begin(cli_common *c, df_gen_params *gen) {
    static int started;
    if (!(c->pp.rank_timeout_s > 0)) return 0;
    if (!started) {
        if (df_tool_watchdog_start(c->pp.rank_timeout_s) != 0) return -1;
        started = 1;
    }
    gen->heartbeat = on_heartbeat;
    df_tool_watchdog_arm();
    return 0;
}
