// The band rule; see bands.h.
#include "runtime/bands.h"

#include <math.h>

df_status df_bands_rows(int total, int n, const double *weights, int *rows) {
    DF_FAIL_IF(n < 1, DF_ERR_ARG, "bands: need at least one band (got %d)", n);
    DF_FAIL_IF(total < 1, DF_ERR_SHAPE, "bands: nothing to split (%d rows)", total);
    if (total < n)
        return DF_ERROR(DF_ERR_SHAPE,
                        "%d rows at the deepest level cannot be cut into %d bands of at least "
                        "one row (at most %d bands for this size)",
                        total, n, total);
    if (weights) {
        int equal = 1;
        for (int i = 0; i < n; i++) {
            DF_FAIL_IF(!(weights[i] > 0) || !isfinite(weights[i]), DF_ERR_ARG,
                       "bands: weight %d is %g (must be a finite number > 0)", i, weights[i]);
            if (weights[i] != weights[0]) equal = 0;
        }
        if (equal) weights = NULL;
    }
    if (!weights) {
        int q = total / n, r = total % n;
        for (int i = 0; i < n; i++) rows[i] = q + (i < r);
        return DF_OK;
    }
    // Every band gets one row; the remaining total - n rows are dealt by largest remainder of
    // the weighted shares of `total` (minus the row already given), ties to the lower band.
    double wsum = 0;
    for (int i = 0; i < n; i++) wsum += weights[i];
    int left = total;
    for (int i = 0; i < n; i++) {
        double share = (double)total * weights[i] / wsum;
        int k = (int)floor(share);
        if (k < 1) k = 1;
        rows[i] = k;
        left -= k;
    }
    // left may be negative when several bands were raised to 1 row: take rows back from the
    // bands furthest above their share; positive: give rows to the largest remainders.
    while (left != 0) {
        int best = -1;
        double bv = 0;
        for (int i = 0; i < n; i++) {
            double share = (double)total * weights[i] / wsum;
            double v = left > 0 ? share - rows[i] : rows[i] - share;
            if (left < 0 && rows[i] <= 1) continue;
            if (best < 0 || v > bv) {
                best = i;
                bv = v;
            }
        }
        DF_ASSERT(best >= 0);
        rows[best] += left > 0 ? 1 : -1;
        left += left > 0 ? -1 : 1;
    }
    return DF_OK;
}

void df_bands_starts(const int *rows, int n, int scale, int *start) {
    start[0] = 0;
    for (int i = 0; i < n; i++) start[i + 1] = start[i] + rows[i] * scale;
}

int df_bands_even(const int *rows, int n) {
    for (int i = 1; i < n; i++)
        if (rows[i] != rows[0]) return 0;
    return 1;
}

void df_bands_range(int total, int n, int k, int *r0, int *r1) {
    const int q = total / n, r = total % n;
    *r0 = k * q + (k < r ? k : r);
    *r1 = *r0 + q + (k < r);
}
