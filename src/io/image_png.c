// PNG writer/reader on libpng (see image_png.h).
#include "io/image_png.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// libpng reports through these instead of printing (the library never prints).
static _Thread_local char g_png_msg[256];
static _Thread_local int g_png_errno; // errno when libpng failed (a failed fwrite: ENOSPC, ...)
static void png_err(png_structp png, png_const_charp msg) {
    g_png_errno = errno;
    snprintf(g_png_msg, sizeof g_png_msg, "%s", msg);
    png_longjmp(png, 1);
}
static void png_warn(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

df_status df_png_write(const char *path, const uint8_t *rgb, int width, int height,
                       const char *const *keys, const char *const *values, int n_text) {
    DF_FAIL_IF(!path || !rgb || width <= 0 || height <= 0, DF_ERR_ARG,
               "invalid image %dx%d for %s", width, height, path ? path : "(null)");
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    DF_FAIL_IF(!f, DF_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    g_png_errno = 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_err, png_warn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_textp text = NULL;
    if (!png || !info) goto fail;
    if (setjmp(png_jmpbuf(png))) goto fail;
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (n_text > 0) {
        text = calloc((size_t)n_text, sizeof *text);
        if (!text) goto fail;
        for (int i = 0; i < n_text; i++) {
            text[i].compression = PNG_TEXT_COMPRESSION_NONE;
            text[i].key = (png_charp)keys[i];
            text[i].text = (png_charp)values[i];
            text[i].text_length = strlen(values[i]);
        }
        png_set_text(png, info, text, n_text);
    }
    png_write_info(png, info);
    for (int y = 0; y < height; y++)
        png_write_row(png, (png_const_bytep)(rgb + (size_t)y * (size_t)width * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(text);
    if (fclose(f) != 0) {
        remove(tmp);
        return DF_ERROR(DF_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return DF_ERROR(DF_ERR_IO, "cannot write %s: %s", path, strerror(e));
    }
    return DF_OK;
fail:
    png_destroy_write_struct(&png, &info);
    free(text);
    fclose(f);
    remove(tmp);
    if (g_png_errno)
        return DF_ERROR(DF_ERR_IO, "libpng failed writing %s: %s: %s", path, g_png_msg,
                        strerror(g_png_errno));
    return DF_ERROR(DF_ERR_IO, "libpng failed writing %s: %s", path, g_png_msg);
}

df_status df_png_read(const char *path, uint8_t **rgb, int *width, int *height, const char *key,
                      char *text_out, size_t text_cap) {
    *rgb = NULL;
    FILE *f = fopen(path, "rb");
    DF_FAIL_IF(!f, DF_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, png_err, png_warn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile out = NULL;
    png_bytep volatile row = NULL;
    if (!png || !info) goto fail;
    if (setjmp(png_jmpbuf(png))) goto fail;
    png_init_io(png, f);
    png_read_info(png, info);
    png_set_strip_16(png);
    png_set_palette_to_rgb(png);
    png_set_gray_to_rgb(png);
    png_set_strip_alpha(png);
    png_read_update_info(png, info);
    int w = (int)png_get_image_width(png, info), h = (int)png_get_image_height(png, info);
    out = df_malloc((size_t)w * (size_t)h * 3);
    row = malloc(png_get_rowbytes(png, info));
    if (!out || !row) goto fail;
    for (int y = 0; y < h; y++) {
        png_read_row(png, row, NULL);
        memcpy(out + (size_t)y * (size_t)w * 3, row, (size_t)w * 3);
    }
    png_read_end(png, info);
    if (key && text_out && text_cap) {
        text_out[0] = 0;
        png_textp t;
        int n = 0;
        png_get_text(png, info, &t, &n);
        for (int i = 0; i < n; i++)
            if (!strcmp(t[i].key, key)) snprintf(text_out, text_cap, "%s", t[i].text);
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(row);
    fclose(f);
    *rgb = out;
    *width = w;
    *height = h;
    return DF_OK;
fail:
    png_destroy_read_struct(&png, &info, NULL);
    df_free(out);
    free(row);
    fclose(f);
    return DF_ERROR(DF_ERR_FORMAT, "cannot decode PNG %s: %s", path, g_png_msg);
}
