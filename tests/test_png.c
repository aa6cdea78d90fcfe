// PNG writer: round trip of pixels and the "parameters" tEXt chunk; failures leave no file.
#include "io/image_png.h"

#include "df_test.h"

#include <unistd.h>

int main(void) {
    const int W = 37, H = 21;
    uint8_t *rgb = malloc((size_t)W * H * 3);
    for (int i = 0; i < W * H * 3; i++) rgb[i] = (uint8_t)(i * 7 + 3);
    const char *keys[] = {"parameters"};
    const char *vals[] = {"a cat\nNegative prompt: \nSteps: 4, Sampler: euler, Seed: 42"};
    const char *path = "/tmp/df_test_png.png";
    EXPECT_OK(df_png_write(path, rgb, W, H, keys, vals, 1));
    uint8_t *back = NULL;
    int w = 0, h = 0;
    char text[256];
    EXPECT_OK(df_png_read(path, &back, &w, &h, "parameters", text, sizeof text));
    EXPECT_EQ_I64(w, W);
    EXPECT_EQ_I64(h, H);
    EXPECT_TRUE(back && memcmp(back, rgb, (size_t)W * H * 3) == 0);
    EXPECT_TRUE(strcmp(text, vals[0]) == 0);
    df_free(back);
    unlink(path);
    // unwritable destination: clear error, nothing left behind
    EXPECT_ERR(df_png_write("/nonexistent-dir/x.png", rgb, W, H, NULL, NULL, 0), DF_ERR_IO,
               "/nonexistent-dir/x.png");
    EXPECT_TRUE(access("/nonexistent-dir/x.png", F_OK) != 0);
    EXPECT_ERR(df_png_write(path, rgb, 0, H, NULL, NULL, 0), DF_ERR_ARG, "invalid image");
    EXPECT_TRUE(access(path, F_OK) != 0);
    // not a PNG
    FILE *f = fopen(path, "wb");
    fputs("not a png at all", f);
    fclose(f);
    EXPECT_ERR(df_png_read(path, &back, &w, &h, NULL, NULL, 0), DF_ERR_FORMAT, "cannot decode");
    unlink(path);
    free(rgb);
    return df_test_result();
}
