// Image folders as compute_metrics.py and clean-fid list them, image reading, PSNR.
#include "distrifuse/metrics.h"

#include "core/core.h"
#include "io/image_png.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void df_metrics_free(void *p) {
    df_free(p);
}

static int ends_with(const char *s, const char *suf) {
    const size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

df_status df_metrics_read_image(const char *path, uint8_t **rgb, int *width, int *height) {
    *rgb = NULL;
    FILE *f = fopen(path, "rb");
    DF_FAIL_IF(!f, DF_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    unsigned char sig[8] = {0};
    const size_t got = fread(sig, 1, 8, f);
    fclose(f);
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (got < 8 || memcmp(sig, png_sig, 8) != 0) {
        if (got >= 3 && sig[0] == 0xff && sig[1] == 0xd8 && sig[2] == 0xff)
            return DF_ERROR(DF_ERR_UNSUPPORTED, "%s: JPEG images are not supported (PNG only)",
                            path);
        return DF_ERROR(DF_ERR_FORMAT, "%s: not a PNG image", path);
    }
    return df_png_read(path, rgb, width, height, NULL, NULL, 0);
}

void df_path_list_free(df_path_list *l) {
    if (!l) return;
    for (int i = 0; i < l->n; i++) free(l->paths[i]);
    free(l->paths);
    l->paths = NULL;
    l->n = 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static df_status push(df_path_list *l, int *cap, const char *dir, const char *name) {
    if (l->n == *cap) {
        const int nc = *cap ? 2 * *cap : 64;
        char **p = realloc(l->paths, sizeof(char *) * (size_t)nc);
        DF_FAIL_IF(!p, DF_ERR_NOMEM, "file list");
        l->paths = p, *cap = nc;
    }
    const size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    DF_FAIL_IF(!s, DF_ERR_NOMEM, "file list");
    snprintf(s, n, "%s/%s", dir, name);
    l->paths[l->n++] = s;
    return DF_OK;
}

df_status df_metrics_list_pairs(const char *dir, df_path_list *out) {
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    DF_FAIL_IF(!d, DF_ERR_IO, "cannot read folder %s: %s", dir, strerror(errno));
    int cap = 0;
    df_status st = DF_OK;
    struct dirent *e;
    while (st == DF_OK && (e = readdir(d)))
        if (ends_with(e->d_name, ".png") || ends_with(e->d_name, ".jpg"))
            st = push(out, &cap, dir, e->d_name);
    closedir(d);
    if (st != DF_OK) {
        df_path_list_free(out);
        return st;
    }
    if (out->n) qsort(out->paths, (size_t)out->n, sizeof(char *), cmp_str);
    return DF_OK;
}

static const char *const g_fid_ext[] = {".bmp", ".jpg", ".jpeg", ".pgm", ".png", ".ppm", ".tif",
                                        ".tiff", ".webp", ".npy", ".JPEG", ".JPG", ".PNG"};

static df_status walk(const char *dir, df_path_list *out, int *cap, int depth) {
    DF_FAIL_IF(depth > 64, DF_ERR_IO, "folder nesting too deep at %s", dir);
    DIR *d = opendir(dir);
    DF_FAIL_IF(!d, DF_ERR_IO, "cannot read folder %s: %s", dir, strerror(errno));
    df_status st = DF_OK;
    struct dirent *e;
    while (st == DF_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue; // glob's wildcards skip hidden names
        const size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(n);
        if (!p) {
            st = DF_ERROR(DF_ERR_NOMEM, "file list");
            break;
        }
        snprintf(p, n, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            st = walk(p, out, cap, depth + 1);
        } else {
            for (size_t k = 0; k < sizeof g_fid_ext / sizeof g_fid_ext[0]; k++)
                if (ends_with(e->d_name, g_fid_ext[k])) {
                    st = push(out, cap, dir, e->d_name);
                    break;
                }
        }
        free(p);
    }
    closedir(d);
    return st;
}

df_status df_metrics_list_fid(const char *dir, df_path_list *out) {
    memset(out, 0, sizeof *out);
    int cap = 0;
    const df_status st = walk(dir, out, &cap, 0);
    if (st != DF_OK) {
        df_path_list_free(out);
        return st;
    }
    if (out->n) qsort(out->paths, (size_t)out->n, sizeof(char *), cmp_str);
    return DF_OK;
}

float df_psnr_u8(const uint8_t *a, const uint8_t *b, size_t n) {
    double sse = 0;
    for (size_t i = 0; i < n; i++) {
        const float d = (float)a[i] / 255.0f - (float)b[i] / 255.0f;
        sse += (double)(d * d);
    }
    const float s = (float)sse, cnt = (float)n;
    // torchmetrics: (2 ln(data_range) - ln(sse / n)) * (10 / ln 10), float32, data_range 1
    const float base_e = 2.0f * logf(1.0f) - logf(s / cnt);
    return base_e * (10.0f / logf(10.0f));
}

float df_mean_f32(const float *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) {
        if (isinf(v[i])) return v[i];
        s += v[i];
    }
    return n ? (float)(s / n) : NAN;
}
