// distrifuse quality metrics: PSNR, LPIPS (AlexNet) and FID (clean-fid "clean" mode) with the
// semantics of DistriFusion's scripts/compute_metrics.py (torchmetrics PSNR / LPIPS, clean-fid
// FID). Images are 8-bit RGB [H][W][3] (grayscale already expanded to 3 channels). The networks
// run on the library's own kernels (NHWC, GEMM convolutions, OpenMP threads: df_set_threads()).
//
// Weights: safetensors files with the upstream parameter names (tools/convert_metric_weights.py
// converts the real checkpoints): LPIPS torchmetrics names (`net.net.slice1.0.weight`,
// `net.lin0.model.1.weight`, ...; the lpips-package names without the leading `net.` are also
// accepted), FID Inception pytorch-fid names (`Conv2d_1a_3x3.conv.weight`, `....bn.running_var`).
#ifndef DF_METRICS_H
#define DF_METRICS_H

#include "distrifuse/status.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------------------------------------
// Images and folders

// Reads an image (PNG: 8-bit or 16-bit, gray / RGB, alpha dropped) as RGB [H][W][3] (malloc'ed,
// free with df_metrics_free). Grayscale is repeated to 3 channels (compute_metrics' read_image).
df_status df_metrics_read_image(const char *path, uint8_t **rgb, int *width, int *height);
void df_metrics_free(void *p);

// A list of file paths (malloc'ed strings).
typedef struct df_path_list {
    char **paths;
    int n;
} df_path_list;
void df_path_list_free(df_path_list *l);

// compute_metrics.py's listing: top-level names of DIR ending in ".png" or ".jpg"
// (case-sensitive), sorted by code point; paths are "DIR/name".
df_status df_metrics_list_pairs(const char *dir, df_path_list *out);
// clean-fid's listing: recursive glob of the clean-fid extensions (bmp jpg jpeg pgm png ppm tif
// tiff webp npy JPEG JPG PNG; hidden names skipped as Python's glob does), sorted by full path.
df_status df_metrics_list_fid(const char *dir, df_path_list *out);

// torchvision Resize((oh, ow)) on a uint8 image (bilinear, antialias=True, align_corners=False,
// round half to even): rgb [H][W][3] -> out [oh][ow][3]. Copies when the size is unchanged.
void df_resize_bilinear_aa_u8(uint8_t *out, int oh, int ow, const uint8_t *in, int H, int W);
// clean-fid "clean" resize: per channel Pillow BICUBIC resize of the float image (F mode), clip
// to [0, 255]: rgb u8 [H][W][3] -> out f32 [oh][ow][3] (values in [0, 255], not rounded).
void df_cleanfid_resize(float *out, int oh, int ow, const uint8_t *in, int H, int W);

// ---------------------------------------------------------------------------------------------
// PSNR (torchmetrics PeakSignalNoiseRatio(data_range=(0, 1)), per image): a and b are n bytes
// (same layout); the images are taken as x / 255. Identical images give +INFINITY.
float df_psnr_u8(const uint8_t *a, const uint8_t *b, size_t n);
// float32 mean of per-image values (+inf if any is +inf).
float df_mean_f32(const float *v, int n);

// ---------------------------------------------------------------------------------------------
// LPIPS (torchmetrics LearnedPerceptualImagePatchSimilarity(net_type='alex', normalize=True))
typedef struct df_lpips df_lpips;
df_status df_lpips_load(const char *path, df_lpips **out);
void df_lpips_free(df_lpips *m);
// Distance of two images of one size [H][W][3] (H, W >= 31: the AlexNet trunk needs that for a
// non-empty relu5). per_layer (NULL or [5]) receives the five layer terms.
// Thread-safe for concurrent calls on one model.
df_status df_lpips_distance(const df_lpips *m, const uint8_t *a, const uint8_t *b, int H, int W,
                            float *dist, float *per_layer);

// ---------------------------------------------------------------------------------------------
// FID Inception-v3 (pytorch-fid's FID port of TF inception-2015-12-05), pool3 features
#define DF_FID_DIM 2048
#define DF_FID_SIZE 299
typedef struct df_inception df_inception;
df_status df_inception_load(const char *path, df_inception **out);
void df_inception_free(df_inception *m);
// feat[2048] of one image x: f32 [299][299][3] in [0, 255] (df_cleanfid_resize output); the
// network sees (x - 128) / 128. Thread-safe for concurrent calls on one model.
df_status df_inception_features(const df_inception *m, const float *x, float *feat);
// clean-fid feature of an RGB u8 image of any size (resize + features).
df_status df_inception_features_u8(const df_inception *m, const uint8_t *rgb, int H, int W,
                                   float *feat);

// ---------------------------------------------------------------------------------------------
// FID statistics and the Frechet distance
typedef struct df_fid_stats {
    int dim;       // feature dimension (2048)
    int64_t count; // images the statistics come from
    double *mu;    // [dim]
    double *sigma; // [dim][dim], np.cov semantics (divisor count - 1)
} df_fid_stats;

// mu (mean) and sigma (covariance, divisor n - 1) of feats [n][dim], in double. n >= 2.
df_status df_fid_stats_from_features(const float *feats, int n, int dim, df_fid_stats *out);
void df_fid_stats_free(df_fid_stats *s);
// safetensors file: "mu" F64 [dim], "sigma" F64 [dim, dim], metadata count / format.
df_status df_fid_stats_save(const df_fid_stats *s, const char *path);
df_status df_fid_stats_load(const char *path, df_fid_stats *out);
// |mu1 - mu2|^2 + tr(s1) + tr(s2) - 2 tr sqrt(s1 s2); the trace of the square root from LAPACK
// symmetric eigendecompositions (dsyevd): sqrt(s1) = V sqrt(L) V^T, then the eigenvalues of
// sqrt(s1) s2 sqrt(s1) (restricted to the range of s1; when a->count - 1 < dim only the top
// count - 1 eigenpairs of s1, via dsyevr: a sample covariance has no more). Terms optional: [4] =
// {mean term, tr s1, tr s2, tr sqrt(s1 s2)}.
df_status df_frechet_distance(const df_fid_stats *a, const df_fid_stats *b, double *fid,
                              double *terms);

// Features of every image of a list (clean-fid order), on df_get_threads() threads (one image per
// thread). feats: malloc'ed [n][2048]. progress (may be NULL) is called after each image.
df_status df_inception_features_files(const df_inception *m, const df_path_list *files,
                                      float **feats, void (*progress)(void *ctx, int done, int n),
                                      void *ctx);

#ifdef __cplusplus
}
#endif
#endif // DF_METRICS_H
