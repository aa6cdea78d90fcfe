// Failure paths of the distributed runtime: each run must end with a clear message and a
// non-zero exit on every rank, never a hang (tests.cmake runs these under `timeout` and expects a
// non-zero exit that is not the timeout's, plus the messages).
//   badcfg   more ranks than deepest-level rows (odd N with split batch: runs as no split
//            batch, 3 bands of a 2-row map): every rank reports the largest N for this size
//   badshape latent height not a multiple of 2^n_down: every rank reports the requirement
//   error    rank 1's model fails in an asynchronous step: it reports and aborts the job
//   die      rank 1 exits abruptly (no MPI_Finalize) in an asynchronous step: the job ends
#include "tool_env.h"
#include "synth.h"

#include "runtime/dist.h"

#include <stdio.h>
#include <unistd.h>

static int g_fail_step = 3, g_rank;
static const char *g_mode = "";

static df_status failing_forward(void *self, df_pctx *ctx, const float *x, int B,
                                 const int *images, int H, int W, float t, float *y) {
    static int calls = 0;
    if (calls++ == g_fail_step && g_rank == 1) {
        if (!strcmp(g_mode, "die")) {
            fprintf(stderr, "rank 1: exiting abruptly (simulated crash)\n");
            fflush(stderr);
            _exit(5);
        }
        return DF_ERROR(DF_ERR_INTERNAL, "simulated model failure on rank 1");
    }
    return synth_forward(self, ctx, x, B, images, H, W, t, y);
}

int main(int argc, char **argv) {
    if (df_dist_init(&argc, &argv, 0, df_tool_launched_by_mpi()) != DF_OK) {
        fprintf(stderr, "init: %s\n", df_last_error());
        return 1;
    }
    df_set_threads(1);
    g_rank = df_mpi_world_rank();
    g_mode = argc > 1 ? argv[1] : "";
    synth sm;
    synth_init(&sm);
    df_dist_model m = synth_model(&sm);
    m.forward = failing_forward;
    df_dist_params p = df_dist_params_default();
    p.warmup_steps = 1;
    p.split_batch = strcmp(g_mode, "badcfg") == 0;
    int H = strcmp(g_mode, "badshape") == 0 ? 23 : strcmp(g_mode, "badcfg") == 0 ? 4 : 24;
    int W = 16;
    df_dist *d = NULL;
    df_status st = df_dist_create(&p, &d);
    if (st == DF_OK) st = df_dist_plan(d, &m, H, W);
    if (st != DF_OK) { // setup errors are agreed on by every rank: clean non-zero exit
        fprintf(stderr, "rank %d: setup failed: %s\n", g_rank, df_last_error());
        df_dist_destroy(d);
        synth_free(&sm);
        df_dist_finalize();
        return 2;
    }
    size_t n = (size_t)2 * H * W * 4;
    float *x = calloc(n, sizeof(float)), *e = calloc(n, sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)((i * 7919) % 13) * 0.1f - 0.6f;
    for (int s = 0; s < 8; s++) {
        st = df_dist_eval(d, &m, s, x, H, W, 900.0f - 100.0f * s, e);
        if (st != DF_OK) { // a local failure mid-run: the other ranks may be inside collectives
            fprintf(stderr, "rank %d: step %d failed: %s; aborting the job\n", g_rank, s,
                    df_last_error());
            df_dist_abort(3);
            return 3; // without MPI
        }
        for (size_t i = 0; i < n; i++) x[i] -= 0.1f * e[i];
    }
    fprintf(stderr, "rank %d: finished without failure\n", g_rank);
    free(x), free(e);
    df_dist_destroy(d);
    synth_free(&sm);
    df_dist_finalize();
    return 0;
}
