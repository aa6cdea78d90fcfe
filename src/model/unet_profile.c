// Optional per-operation UNet profile (df_unet_set_profile, DF_UNET_PROFILE): the table of
// CPU time, wall time and FLOPs per operation class and latent level that PROF (unet_impl.h)
// fills, reset after the warm-up forward and printed to stderr by df_unet_destroy.
#include "model/unet_impl.h"

#include <stdio.h>
#include <string.h>

static const char *const pr_names[PR_N] = {"conv weight pack", "conv3x3", "linear weight cvt",
                                           "linear gemm", "attn self", "attn cross", "norms",
                                           "elementwise/shape"};

void df_unet_set_profile(df_unet *u, int on) { u->prof.on = on != 0; }

// Called by df_unet_forward when profiling: counts the forward, resetting the counters at the
// second one (the first, a warm-up, is dropped).
void df_unet_pr_begin(df_unet *u) {
    if (u->prof.forwards == 1 && !u->prof.skipped_first) { // drop the warm-up forward
        memset(u->prof.t, 0, sizeof u->prof.t);
        memset(u->prof.wall, 0, sizeof u->prof.wall);
        memset(u->prof.flops, 0, sizeof u->prof.flops);
        u->prof.forwards = 0;
        u->prof.skipped_first = 1;
    }
    u->prof.forwards++;
}

void df_unet_pr_print(const df_unet *u) {
    const uprof *p = &u->prof;
    if (!p->on || p->forwards <= 0) return;
    double tot = 0, totw = 0, fl = 0;
    for (int c = 0; c < PR_N; c++)
        for (int l = 0; l < PR_LEVELS; l++)
            tot += p->t[c][l], totw += p->wall[c][l], fl += p->flops[c][l];
    fprintf(stderr,
            "unet profile: %.0f forward(s), per forward in ops %.3f CPU-s, %.3f s wall "
            "(%.1f GFLOP); per class: CPU-s, share, wall s, GFLOP, GFLOP per CPU-s / wall-s\n",
            p->forwards, tot / p->forwards, totw / p->forwards, fl / p->forwards * 1e-9);
    for (int c = 0; c < PR_N; c++)
        for (int l = 0; l < PR_LEVELS; l++) {
            if (p->t[c][l] <= 0) continue;
            const double t = p->t[c][l] / p->forwards, f = p->flops[c][l] / p->forwards;
            const double w = p->wall[c][l] / p->forwards;
            fprintf(stderr, "  %-20s L%d %8.3f s %5.1f%% %8.3f s", pr_names[c], l, t,
                    100 * p->t[c][l] / tot, w);
            if (f > 0)
                fprintf(stderr, "  %8.1f GFLOP %6.1f / %6.1f GF/s", f * 1e-9, f / t * 1e-9,
                        f / w * 1e-9);
            fprintf(stderr, "\n");
        }
}
