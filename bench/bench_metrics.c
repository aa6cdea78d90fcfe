// Throughput of distrifuse-metrics' networks on S x S inputs (default 1024, as generated images):
// FID features (PNG decode + clean-fid resize to 299 + Inception-v3, one image per thread, the
// path of the program) in images/s, LPIPS-AlexNet (PNG decode of both + PSNR + LPIPS, one pair
// per thread) in pairs/s, the GFLOP/s of their convolutions (multiply-adds counted by the
// operators) and the ratio to the cblas_sgemm ceiling (M=4096 N=K=1280, the kernels bench's
// ceiling shape, best of the calls just before and after each measurement) on the same threads;
// also by CPU time (the rates while the threads run: this VM's cores are shared with other jobs).
//
//   df-bench-metrics [-t N] [--images N] [--pairs N] [--size S] [--lpips-weights F]
//                    [--fid-weights F]
// Weights default to the random-weight goldens in ../shared/golden/metrics (speed does not depend
// on the values). Last stdout line: one JSON object.
#include "distrifuse/metrics.h"
#include "metrics/nn.h"

#include "core/core.h"
#include "io/image_png.h"
#include "kernels/kernels.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Best of reps calls: wall GFLOP/s (return value) and CPU-time GFLOP/s per thread x threads in
// *cpu_gf (what the threads reach while they run; this VM's cores are shared with other jobs).
static double sgemm_gflops(int reps, int threads, double *cpu_gf) {
    const int M = 4096, N = 1280, K = 1280;
    float *a = df_malloc(sizeof(float) * (size_t)M * K),
          *b = df_malloc(sizeof(float) * (size_t)K * N);
    float *c = df_malloc(sizeof(float) * (size_t)M * N);
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)K * N; i++) b[i] = (float)(i % 5) * 0.1f;
    double best = 1e30, bestc = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        const double t0 = df_time_s(), c0 = cpu_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c,
                    N);
        const double t = df_time_s() - t0, tc = (cpu_s() - c0) / threads;
        if (r > 0 && t < best) best = t;
        if (r > 0 && tc < bestc) bestc = tc;
    }
    df_free(a), df_free(b), df_free(c);
    *cpu_gf = 2.0 * M * N * K / bestc / 1e9;
    return 2.0 * M * N * K / best / 1e9;
}

int main(int argc, char **argv) {
    int threads = 2, nimg = 8, npairs = 4, S = 1024;
    const char *lw = DF_SOURCE_DIR "/../shared/golden/metrics/lpips_alex_random.safetensors";
    const char *fw = DF_SOURCE_DIR "/../shared/golden/metrics/fid_inception_random.safetensors";
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if ((!strcmp(s, "-t") || !strcmp(s, "--threads")) && v) threads = atoi(v), i++;
        else if (!strcmp(s, "--images") && v) nimg = atoi(v), i++;
        else if (!strcmp(s, "--pairs") && v) npairs = atoi(v), i++;
        else if (!strcmp(s, "--size") && v) S = atoi(v), i++;
        else if (!strcmp(s, "--lpips-weights") && v) lw = v, i++;
        else if (!strcmp(s, "--fid-weights") && v) fw = v, i++;
        else {
            fprintf(stderr, "usage: %s [-t N] [--images N] [--pairs N] [--size S] "
                            "[--lpips-weights F] [--fid-weights F]\n", argv[0]);
            return 2;
        }
    }
    if (nimg < 1 || npairs < 1 || S < 64) return 2;
    df_set_threads(threads);
    df_lpips *lp = NULL;
    df_inception *inc = NULL;
    if (df_lpips_load(lw, &lp) != DF_OK || df_inception_load(fw, &inc) != DF_OK) {
        fprintf(stderr, "df-bench-metrics: error: %s\n", df_last_error());
        return 1;
    }
    // smooth random-ish S x S images written as PNG (the programs read files)
    char dir[] = "/tmp/df-bench-metrics.XXXXXX";
    if (!mkdtemp(dir)) return 1;
    const int nfiles = nimg > 2 * npairs ? nimg : 2 * npairs;
    df_path_list files = {calloc((size_t)nfiles, sizeof(char *)), nfiles};
    uint8_t *img = malloc((size_t)S * S * 3);
    for (int f = 0; f < nfiles; f++) {
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++)
                for (int c = 0; c < 3; c++)
                    img[((size_t)y * S + x) * 3 + c] =
                        (uint8_t)((x * (c + 1) + y * (f + 2) + ((x * y) >> 9) * 17) & 255);
        files.paths[f] = malloc(strlen(dir) + 32);
        sprintf(files.paths[f], "%s/%04d.png", dir, f);
        if (df_png_write(files.paths[f], img, S, S, NULL, NULL, 0) != DF_OK) return 1;
    }
    free(img);
    double cc0, cc1, cc2;
    const double ceil0 = sgemm_gflops(3, threads, &cc0);
    // FID features
    df_path_list fl = {files.paths, nimg};
    float *feats = NULL;
    df_mconv_macs_reset();
    double t0 = df_time_s(), c0 = cpu_s();
    if (df_inception_features_files(inc, &fl, &feats, NULL, NULL) != DF_OK) return 1;
    const double t_fid = df_time_s() - t0, fid_gf = 2 * df_mconv_macs() / t_fid / 1e9;
    const double tc_fid = (cpu_s() - c0) / threads, fid_gfc = 2 * df_mconv_macs() / tc_fid / 1e9;
    free(feats);
    const double ceil1 = sgemm_gflops(3, threads, &cc1);
    // LPIPS pairs (+ PSNR), one pair per thread
    df_mconv_macs_reset();
    int failed = 0;
    t0 = df_time_s(), c0 = cpu_s();
    const int saved = threads > 1 ? df_blas_single_begin() : 1;
#pragma omp parallel for schedule(dynamic, 1) if (threads > 1)
    for (int p = 0; p < npairs; p++) {
        uint8_t *a = NULL, *b = NULL;
        int w, h, w2, h2;
        float d = 0;
        int ok = df_metrics_read_image(files.paths[2 * p], &a, &w, &h) == DF_OK &&
                 df_metrics_read_image(files.paths[2 * p + 1], &b, &w2, &h2) == DF_OK;
        if (ok) {
            volatile float ps = df_psnr_u8(a, b, (size_t)w * h * 3);
            (void)ps;
            ok = df_lpips_distance(lp, a, b, h, w, &d, NULL) == DF_OK;
        }
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
        df_metrics_free(a), df_metrics_free(b);
    }
    if (threads > 1) df_blas_single_end(saved);
    const double t_lp = df_time_s() - t0, lp_gf = 2 * df_mconv_macs() / t_lp / 1e9;
    const double tc_lp = (cpu_s() - c0) / threads, lp_gfc = 2 * df_mconv_macs() / tc_lp / 1e9;
    const double ceil2 = sgemm_gflops(3, threads, &cc2);
    for (int f = 0; f < nfiles; f++) remove(files.paths[f]), free(files.paths[f]);
    free(files.paths);
    rmdir(dir);
    df_lpips_free(lp);
    df_inception_free(inc);
    if (failed) return 1;
    const double c01 = ceil0 > ceil1 ? ceil0 : ceil1, c12 = ceil1 > ceil2 ? ceil1 : ceil2;
    const double k01 = cc0 > cc1 ? cc0 : cc1, k12 = cc1 > cc2 ? cc1 : cc2;
    printf(
        "FID features: %d images %dx%d in %.2f s = %.2f images/s, %.1f GFLOP/s (%.2f of sgemm %.1f)"
        "; by CPU time: %.2f images/s, %.2f of sgemm %.1f\n",
        nimg, S, S, t_fid, nimg / t_fid, fid_gf, fid_gf / c01, c01, nimg / tc_fid, fid_gfc / k01,
        k01);
    printf("LPIPS: %d pairs %dx%d in %.2f s = %.2f pairs/s, %.1f GFLOP/s (%.2f of sgemm %.1f)"
           "; by CPU time: %.2f pairs/s, %.2f of sgemm %.1f\n",
           npairs, S, S, t_lp, npairs / t_lp, lp_gf, lp_gf / c12, c12, npairs / tc_lp,
           lp_gfc / k12, k12);
    printf(
        "{\"threads\":%d,\"size\":%d,\"fid_images\":%d,\"fid_images_per_s\":%.3f,"
        "\"fid_conv_gflops\":%.2f,\"fid_ratio\":%.3f,\"lpips_pairs\":%d,\"lpips_pairs_per_s\":%.3f,"
        "\"lpips_conv_gflops\":%.2f,\"lpips_ratio\":%.3f,\"sgemm_gflops\":[%.2f,%.2f,%.2f],"
        "\"cpu_time\":{\"fid_images_per_s\":%.3f,\"fid_ratio\":%.3f,\"lpips_pairs_per_s\":%.3f,"
        "\"lpips_ratio\":%.3f,\"sgemm_gflops\":[%.2f,%.2f,%.2f]}}\n",
        threads, S, nimg, nimg / t_fid, fid_gf, fid_gf / c01, npairs, npairs / t_lp, lp_gf,
        lp_gf / c12, ceil0, ceil1, ceil2, nimg / tc_fid, fid_gfc / k01, npairs / tc_lp,
        lp_gfc / k12, cc0, cc1, cc2);
    return 0;
}
