// df-compare: PSNR of images against a reference, and a side-by-side PNG of all of them.
//
//   df-compare [--out SIDE.png] [--diff GAIN] REF.png IMG.png [IMG.png ...]
//
// Prints one line per image: its PSNR in dB against REF over all pixels and channels (images
// mapped to [0,1]: PSNR = 10 log10(1/MSE); "inf" when identical). Images must share REF's size.
// The side-by-side image puts REF first, then each IMG, separated by 16 white columns. With
// --diff, a second row shows |IMG - REF| * GAIN under each image (where the errors are: a naive
// patch split shows up as a bright band along the patch border).
#include "core/core.h"
#include "io/image_png.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double df_psnr_u8(const uint8_t *a, const uint8_t *b, size_t n);

double df_psnr_u8(const uint8_t *a, const uint8_t *b, size_t n) {
    double se = 0;
    for (size_t i = 0; i < n; i++) {
        double d = ((double)a[i] - (double)b[i]) / 255.0;
        se += d * d;
    }
    if (se == 0) return INFINITY;
    return 10.0 * log10((double)n / se);
}

int main(int argc, char **argv) {
    const char *out = NULL;
    const char *paths[16];
    int n = 0;
    double gain = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--diff") && i + 1 < argc) gain = atof(argv[++i]);
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: df-compare [--out SIDE.png] [--diff GAIN] REF.png IMG.png [IMG.png ...]\n"
                   "Prints the PSNR (dB) of each IMG against REF and optionally writes all\n"
                   "images side by side into SIDE.png; --diff adds a row of |IMG-REF|*GAIN.\n");
            return 0;
        } else if (n < 16) paths[n++] = argv[i];
        else {
            fprintf(stderr, "df-compare: error: at most 16 images\n");
            return 2;
        }
    }
    if (n < 2) {
        fprintf(stderr, "df-compare: error: need a reference and at least one image (--help)\n");
        return 2;
    }
    uint8_t *img[16] = {0};
    int w = 0, h = 0, rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        int wi, hi;
        df_status st = df_png_read(paths[i], &img[i], &wi, &hi, NULL, NULL, 0);
        if (st != DF_OK) {
            fprintf(stderr, "df-compare: error: %s\n", df_last_error());
            rc = 1;
        } else if (i == 0) {
            w = wi, h = hi;
        } else if (wi != w || hi != h) {
            fprintf(stderr, "df-compare: error: %s is %dx%d, reference %s is %dx%d\n", paths[i],
                    wi, hi, paths[0], w, h);
            rc = 1;
        }
    }
    for (int i = 1; i < n && !rc; i++)
        printf("%s: PSNR %.2f dB vs %s\n", paths[i],
               df_psnr_u8(img[i], img[0], (size_t)w * (size_t)h * 3), paths[0]);
    if (!rc && out) {
        const int gap = 16, W = n * w + (n - 1) * gap, H = gain > 0 ? 2 * h + gap : h;
        uint8_t *side = df_malloc((size_t)W * (size_t)H * 3);
        if (!side) {
            fprintf(stderr, "df-compare: error: out of memory\n");
            rc = 1;
        } else {
            memset(side, 255, (size_t)W * (size_t)H * 3);
            for (int y = 0; y < h; y++)
                for (int i = 0; i < n; i++) {
                    uint8_t *dst = side + ((size_t)y * W + (size_t)i * (w + gap)) * 3;
                    const uint8_t *src = img[i] + (size_t)y * w * 3;
                    memcpy(dst, src, (size_t)w * 3);
                    if (gain <= 0) continue;
                    uint8_t *dd = dst + (size_t)(h + gap) * W * 3;
                    const uint8_t *ref = img[0] + (size_t)y * w * 3;
                    for (int k = 0; k < w * 3; k++) {
                        double d = fabs((double)src[k] - (double)ref[k]) * gain;
                        dd[k] = (uint8_t)(d > 255 ? 255 : d);
                    }
                }
            if (df_png_write(out, side, W, H, NULL, NULL, 0) != DF_OK) {
                fprintf(stderr, "df-compare: error: %s\n", df_last_error());
                rc = 1;
            }
            df_free(side);
        }
    }
    for (int i = 0; i < n; i++) df_free(img[i]);
    return rc;
}
