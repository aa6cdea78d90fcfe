// The band rule of the patch-parallel runtime (the UNet's displaced patches, naive patches and
// the patch-parallel VAE decode): how `total` rows at the DEEPEST level of a model are dealt to
// n bands. Every shallower level's band boundaries are the deepest level's boundaries scaled by
// the level's factor (2^k), so halos and down/upsampling stay consistent across levels.
//
//   - weights NULL (or all equal): bands differ by at most one row; the first total % n bands
//     get the extra row (for total % n == 0 every band has total / n rows, the old rule);
//   - weights [n] (> 0, e.g. relative node speeds): rows proportional to the weights, rounded by
//     largest remainder (ties to the lower band), every band at least one row.
//
// MPI-free and allocation-free; safe to include from any part of the library.
#ifndef DF_RUNTIME_BANDS_H
#define DF_RUNTIME_BANDS_H

#include "core/core.h"

// rows[n] := rows of each band at the deepest level (sum = total). DF_ERR_SHAPE when
// total < n (some band would be empty; the message names the largest n for this total),
// DF_ERR_ARG for n < 1 or a weight that is not finite and > 0.
df_status df_bands_rows(int total, int n, const double *weights, int *rows);

// start[n + 1] := prefix sums of rows scaled by `scale` (start[0] = 0, start[n] = total*scale):
// band i covers [start[i], start[i+1]) at a level where one deepest row is `scale` rows.
void df_bands_starts(const int *rows, int n, int scale, int *start);

// Band k of n under the equal-weight rule of df_bands_rows, as a row range [*r0, *r1) (for
// total < n the bands k >= total are empty). The patch-parallel VAE decode cuts the latent with
// it, the UNet's and naive patch's equal bands are the same rows.
void df_bands_range(int total, int n, int k, int *r0, int *r1);

// 1 if every band has the same number of rows.
int df_bands_even(const int *rows, int n);

#endif // DF_RUNTIME_BANDS_H
