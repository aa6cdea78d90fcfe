// Patch-parallel VAE decode over all ranks of MPI_COMM_WORLD (issue 9 item 1; the band decode
// itself is df_vae_decode_band in src/model/vae.h, this is its MPI side). MPI-free header.
//
// With N ranks the latent's h rows are cut into N bands (df_vae_band_split: band k gets rows
// [k*h/N, (k+1)*h/N), heights differ by at most one; both CFG groups take part, the VAE has no
// CFG). Every rank holds the whole latent (the denoising loop is replicated), decodes its band
// with point-to-point halo rows before every 3x3 conv, GroupNorm double sums all-gathered and
// added in rank order (identical on every rank), and the mid attention's K/V all-gathered; rank
// 0 then gathers the image rows (MPI_Gatherv). The result equals df_vae_decode untiled up to
// float rounding (tests/mpi/test_mpi_vae.c).
//
// Tiling (opts->tiling FORCE, or AUTO when one band's untiled decode would exceed mem_limit):
// each rank runs the tiled df_vae_decode on its latent rows plus a margin of one tile overlap
// above and below (decoded, then cropped), so the band seams are as good as tile seams; the
// result then differs from the single-rank decode by about the tiled-vs-untiled difference.
#ifndef DF_RUNTIME_VAE_DIST_H
#define DF_RUNTIME_VAE_DIST_H

#include "core/core.h"
#include "model/vae.h"
#include "runtime/comm.h"

typedef struct df_vae_dist_times {
    double total_s;   // wall time of the call on this rank (halos and gather included)
    double compute_s; // total - halo - gather
    double halo_s;    // inside the decode's communication: halo rows, GroupNorm sums, K/V
    double gather_s;  // the image gather to rank 0 (absorbs the skew between the ranks)
    int tiled;        // 1 if the bands were decoded tiled
    int bands;        // number of bands (ranks)
} df_vae_dist_times;

// z [h][w][latent] (scaled latent; identical on every rank) -> img [f*h][f*w][out] on rank 0
// (img is ignored elsewhere and may be NULL; NULL on rank 0 means its image buffer could not be
// allocated: every rank then returns an error). Collective over `parent` (the ranks of the
// generation, e.g. one image group; NULL = MPI_COMM_WORLD), whose rank 0 gets the image. In one
// process (no MPI, or 1 rank) this is df_vae_decode. The dump callback of opts is not used. Errors are
// agreed on (every rank returns one) where they happen before the decode's communication.
// When h < N (a band would be empty) rank 0 decodes alone (t->bands = 1).
df_status df_vae_decode_dist(df_vae *m, df_comm *parent, const float *z, int h, int w,
                             const df_vae_decode_opts *opts, float *img, df_vae_dist_times *t);

#endif // DF_RUNTIME_VAE_DIST_H
