// Internal: the FID Inception forward with a per-stage hook (tests compare the stages with
// fid_debug.safetensors). Stages: Conv2d_1a_3x3 ... Conv2d_4a_3x3, maxpool1, maxpool2,
// Mixed_5b ... Mixed_7c, in forward order; x is NHWC [H][W][C].
#ifndef DF_METRICS_INCEPTION_IMPL_H
#define DF_METRICS_INCEPTION_IMPL_H

#include "distrifuse/metrics.h"

typedef void (*df_inception_hook)(void *ctx, const char *stage, const float *x, int H, int W,
                                  int C);
df_status df_inception_forward_hooked(const df_inception *m, const float *x, float *feat,
                                      df_inception_hook hook, void *ctx);

#endif // DF_METRICS_INCEPTION_IMPL_H
