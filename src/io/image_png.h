// PNG output (libpng): 8-bit RGB, optional text chunks (A1111-style "parameters"), written to
// PATH.tmp.<pid> and renamed, so a failure never leaves a half-written image.
#ifndef DF_IO_IMAGE_PNG_H
#define DF_IO_IMAGE_PNG_H

#include "core/core.h"

// rgb: [H][W][3] bytes. keys/values: n_text pairs of tEXt chunks (may be 0).
df_status df_png_write(const char *path, const uint8_t *rgb, int width, int height,
                       const char *const *keys, const char *const *values, int n_text);
// Reads an 8-bit RGB/RGBA PNG into a malloc'ed [H][W][3] buffer (df_free); for tests and tools.
// If key is not NULL and text_out is not NULL, copies the tEXt chunk `key` (or "") into text_out.
df_status df_png_read(const char *path, uint8_t **rgb, int *width, int *height, const char *key,
                      char *text_out, size_t text_cap);

#endif // DF_IO_IMAGE_PNG_H
