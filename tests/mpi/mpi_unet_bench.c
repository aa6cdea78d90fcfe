// Per-step timing of the distributed UNet (tiny SDXL fixture, or any UNet folder), for the
// measurement of communication overlap: for each configuration, the mean over synchronous and
// over asynchronous steps of wall time, compute, time blocked in MPI (waits + blocking
// exchanges), time in MPI polls, and bytes received per rank.
// Usage: mpiexec -n N df-mpi-unet-bench [--unet DIR] [--latent L] [--steps S] [--warmup W]
//        [--split 0|1] [--reps R]
// Runs, interleaved R times: full_sync, and corrected_async_gn with progress none / test /
// thread (thread only if MPI_THREAD_MULTIPLE is provided).
#include "tool_env.h"
#include "../df_test.h"
#include "model/unet.h"
#include "runtime/dist.h"
#include "runtime/dist_unet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct acc {
    int n;
    double t, comp, wait, prog, gather;
    double bytes;
} acc;

static void add(acc *a, const df_dist_step_stats *s) {
    a->n++;
    a->t += s->t_total, a->comp += s->t_compute, a->wait += s->t_wait, a->prog += s->t_progress;
    a->gather += s->t_gather, a->bytes += (double)s->bytes_recv;
}

int main(int argc, char **argv) {
    const char *unet_dir = NULL;
    int L = 64, steps = 6, W = 1, split = 0, reps = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--unet")) unet_dir = argv[i + 1];
        else if (!strcmp(argv[i], "--latent")) L = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup")) W = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--split")) split = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    }
    if (df_dist_init(&argc, &argv, 1, df_tool_launched_by_mpi()) != DF_OK) {
        fprintf(stderr, "%s\n", df_last_error());
        return 1;
    }
    df_set_threads(1);
    int R = df_mpi_world_rank();
    char path[4200];
    if (!unet_dir) {
        const char *gd = df_test_golden_dir();
        if (!gd) return 77;
        snprintf(path, sizeof path, "%s/models/tiny-sdxl", gd);
        unet_dir = path;
    }
    df_unet *u = NULL;
    if (df_unet_load(unet_dir, NULL, &u) != DF_OK) {
        fprintf(stderr, "rank %d: %s\n", R, df_last_error());
        df_dist_abort(1);
        return 1;
    }
    const df_unet_config *cfg = df_unet_get_config(u);
    int T = 77, D = cfg->cross_attention_dim, Dp = cfg->text_embeds_dim;
    float *enc = malloc(sizeof(float) * 2 * T * D), *pooled = calloc(2 * (size_t)(Dp > 0 ? Dp : 1), 4);
    float tids[12] = {8.f * L, 8.f * L, 0, 0, 8.f * L, 8.f * L, 8.f * L, 8.f * L, 0, 0, 8.f * L, 8.f * L};
    for (int i = 0; i < 2 * T * D; i++) enc[i] = 0.01f * (float)((i * 37) % 101 - 50);
    size_t n = (size_t)2 * L * L * cfg->in_channels;
    float *x = malloc(n * sizeof(float)), *e = malloc(n * sizeof(float));

    enum { NV = 4 };
    const char *vname[NV] = {"full_sync", "corrected progress=none", "corrected progress=test",
                             "corrected progress=thread"};
    acc sy[NV], as[NV];
    memset(sy, 0, sizeof sy);
    memset(as, 0, sizeof as);
    for (int r = 0; r < reps; r++) {
        for (int v = 0; v < NV; v++) {
            if (v == 3 && !df_mpi_thread_multiple()) continue;
            df_dist_params p = df_dist_params_default();
            p.split_batch = split;
            p.warmup_steps = W;
            p.sync_mode = v == 0 ? DF_SYNC_FULL_SYNC : DF_SYNC_CORRECTED_ASYNC_GN;
            p.progress = v == 1 ? DF_PROGRESS_NONE : v == 3 ? DF_PROGRESS_THREAD : DF_PROGRESS_TEST;
            df_dist *d = NULL;
            df_dist_unet *du = NULL;
            df_status st = df_dist_create(&p, &d);
            if (st == DF_OK) st = df_dist_unet_create(d, u, L, L, enc, T, pooled, tids, &du);
            for (size_t i = 0; i < n; i++) x[i] = 0.5f * (float)((i * 7919) % 17) / 17.f - 0.25f;
            for (int s = 0; s < steps && st == DF_OK; s++) {
                st = df_dist_eval(d, df_dist_unet_model(du), s, x, L, L, 900.f - 50.f * s, e);
                df_dist_step_stats ss;
                df_dist_last_stats(d, &ss);
                if (s > 0) add(ss.sync ? &sy[v] : &as[v], &ss); // step 0 = planning
                for (size_t i = 0; i < n; i++) x[i] -= 0.05f * e[i];
            }
            if (st != DF_OK) {
                fprintf(stderr, "rank %d: %s\n", R, df_last_error());
                df_dist_abort(1);
            }
            df_dist_unet_destroy(du);
            df_dist_destroy(d);
        }
    }
    if (R == 0) {
        printf("N=%d %s latent %dx%d, %d steps (warm-up %d), %d reps; ms per step (means), rank "
               "0\n",
               df_mpi_world_size(), split ? "split" : "nosplit", L, L, steps, W, reps);
        printf("%-28s %-5s %8s %8s %8s %8s %8s %10s\n", "config", "steps", "wall", "compute",
               "blocked", "polls", "gather", "MiB recv");
        for (int v = 0; v < NV; v++) {
            for (int k = 0; k < 2; k++) {
                acc *a = k == 0 ? &sy[v] : &as[v];
                if (!a->n) continue;
                printf("%-28s %-5s %8.1f %8.1f %8.1f %8.1f %8.1f %10.2f\n", vname[v],
                       k == 0 ? "sync" : "async", 1e3 * a->t / a->n, 1e3 * a->comp / a->n,
                       1e3 * a->wait / a->n, 1e3 * a->prog / a->n, 1e3 * a->gather / a->n,
                       a->bytes / a->n / 1048576.0);
            }
        }
    }
    free(enc), free(pooled), free(x), free(e);
    df_unet_destroy(u);
    df_dist_finalize();
    return 0;
}
