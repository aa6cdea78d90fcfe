// safetensors reader/writer: round trips, f32 conversion, corrupt/hostile files, goldens.
#include "io/safetensors.h"

#include "df_test.h"

#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[256];

static void tmp_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", g_dir, name);
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot create %s\n", path);
        exit(1);
    }
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

// Writes a raw safetensors file: 8-byte LE length `hlen`, header bytes, `ndata` data bytes.
static void write_raw(const char *path, uint64_t hlen, const char *hdr, size_t ndata) {
    size_t hl = hdr ? strlen(hdr) : 0;
    size_t total = 8 + hl + ndata;
    unsigned char *b = calloc(total, 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen >> (8 * i));
    if (hl) memcpy(b + 8, hdr, hl);
    for (size_t i = 0; i < ndata; i++) b[8 + hl + i] = (unsigned char)(i * 7 + 1);
    write_bytes(path, b, total);
    free(b);
}

// Writes header `hdr` with a correct length and `ndata` data bytes.
static void write_hdr(const char *path, const char *hdr, size_t ndata) {
    write_raw(path, strlen(hdr), hdr, ndata);
}

// Opens PATH expecting failure with status `code` and message containing `needle` (and the
// path); checks *out stays NULL.
#define EXPECT_OPEN_ERR(path, code, needle)                                                    \
    do {                                                                                       \
        df_st_file *bad_ = (df_st_file *)1;                                                    \
        EXPECT_ERR(df_st_open((path), &bad_), (code), (needle));                               \
        EXPECT_TRUE(bad_ == NULL);                                                             \
        EXPECT_TRUE(strstr(df_last_error(), (path)) != NULL);                                  \
        if (bad_ && bad_ != (df_st_file *)1) df_st_close(bad_);                                \
    } while (0)

// ---------------------------------------------------------------------------------------------

static void test_round_trip(void) {
    char path[512];
    tmp_path(path, sizeof path, "rt.safetensors");

    float f32[6] = {1.5f, -2.25f, 3.0f, 0.0f, -0.0f, 1e-3f};     // [2][3]
    uint16_t f16[4], bf16[5];                                      // [4], [5][1]
    const float f16v[4] = {0.5f, -1.0f, 65504.0f, 6.1035156e-05f};
    const float bf16v[5] = {1.0f, -3.0f, 256.0f, 0.15625f, -1e30f};
    for (int i = 0; i < 4; i++) f16[i] = df_f32_to_f16(f16v[i]);
    for (int i = 0; i < 5; i++) bf16[i] = df_f32_to_bf16(bf16v[i]);
    int32_t i32[3] = {49406, -7, 2147483647};
    uint8_t u8[2 * 2 * 3] = {0, 1, 2, 3, 127, 128, 200, 250, 251, 252, 254, 255}; // NHWC
    int64_t i64[2] = {INT64_MIN, 77};
    float scalar = 42.5f;                                          // 0-d

    df_st_writer *w = NULL;
    EXPECT_OK(df_st_writer_create(&w));
    EXPECT_OK(df_st_writer_add(w, "a.f32", DF_DTYPE_F32, 2, (int64_t[]){2, 3}, f32));
    EXPECT_OK(df_st_writer_add(w, "b.f16", DF_DTYPE_F16, 1, (int64_t[]){4}, f16));
    EXPECT_OK(df_st_writer_add(w, "c.bf16", DF_DTYPE_BF16, 2, (int64_t[]){5, 1}, bf16));
    EXPECT_OK(df_st_writer_add(w, "d.i32", DF_DTYPE_I32, 1, (int64_t[]){3}, i32));
    EXPECT_OK(df_st_writer_add(w, "e.u8", DF_DTYPE_U8, 4, (int64_t[]){1, 2, 2, 3}, u8));
    EXPECT_OK(df_st_writer_add(w, "f.scalar", DF_DTYPE_F32, 0, NULL, &scalar));
    EXPECT_OK(df_st_writer_add(w, "g.empty", DF_DTYPE_F16, 3, (int64_t[]){3, 0, 5}, NULL));
    EXPECT_OK(df_st_writer_add(w, "h.i64", DF_DTYPE_I64, 2, (int64_t[]){1, 2}, i64));
    EXPECT_OK(df_st_writer_add(w, "name with \"quotes\" \\ and \x01 ctl", DF_DTYPE_U8, 1,
                               (int64_t[]){1}, u8));
    EXPECT_OK(df_st_writer_meta(w, "format", "pt"));
    EXPECT_OK(df_st_writer_meta(w, "note", "tab\there \"q\""));
    EXPECT_OK(df_st_write(w, path));
    df_st_writer_destroy(w);

    // No temp file left behind.
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    EXPECT_TRUE(!file_exists(tmp));

    // Layout: header length is a multiple of 8, data packed.
    FILE *fp = fopen(path, "rb");
    unsigned char le[8] = {0};
    EXPECT_TRUE(fp && fread(le, 1, 8, fp) == 8);
    if (fp) fclose(fp);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | le[i];
    EXPECT_EQ_I64((int64_t)(hlen % 8), 0);
    struct stat sb;
    EXPECT_TRUE(stat(path, &sb) == 0);
    const size_t data_bytes = sizeof f32 + sizeof f16 + sizeof bf16 + sizeof i32 + sizeof u8 +
                              sizeof scalar + sizeof i64 + 1;
    EXPECT_EQ_I64((int64_t)sb.st_size, (int64_t)(8 + hlen + data_bytes));

    df_st_file *f = NULL;
    EXPECT_OK(df_st_open(path, &f));
    if (!f) return;
    EXPECT_EQ_I64(df_st_count(f), 9);
    EXPECT_TRUE(strcmp(df_st_path(f), path) == 0);
    EXPECT_TRUE(df_st_metadata(f, "format") && strcmp(df_st_metadata(f, "format"), "pt") == 0);
    EXPECT_TRUE(df_st_metadata(f, "note") &&
                strcmp(df_st_metadata(f, "note"), "tab\there \"q\"") == 0);
    EXPECT_TRUE(df_st_metadata(f, "missing") == NULL);
    EXPECT_TRUE(df_st_find(f, "__metadata__") == NULL);
    EXPECT_TRUE(df_st_find(f, "nope") == NULL);
    EXPECT_TRUE(df_st_get(f, -1) == NULL && df_st_get(f, 9) == NULL);
    // Every index reachable and findable by its name.
    for (int i = 0; i < df_st_count(f); i++) {
        const df_st_tensor *t = df_st_get(f, i);
        EXPECT_TRUE(t && df_st_find(f, t->name) == t);
    }

    const df_st_tensor *t = df_st_find(f, "a.f32");
    EXPECT_TRUE(t && t->dtype == DF_DTYPE_F32 && t->ndim == 2 && t->shape[0] == 2 &&
                t->shape[1] == 3 && t->numel == 6 && t->nbytes == 24);
    if (t) EXPECT_TRUE(memcmp(t->data, f32, sizeof f32) == 0);
    t = df_st_find(f, "b.f16");
    EXPECT_TRUE(t && t->dtype == DF_DTYPE_F16 && t->ndim == 1 && t->numel == 4);
    if (t) EXPECT_TRUE(memcmp(t->data, f16, sizeof f16) == 0);
    t = df_st_find(f, "c.bf16");
    EXPECT_TRUE(t && t->dtype == DF_DTYPE_BF16 && t->ndim == 2 && t->shape[1] == 1);
    if (t) EXPECT_TRUE(memcmp(t->data, bf16, sizeof bf16) == 0);
    t = df_st_find(f, "d.i32");
    EXPECT_TRUE(t && t->dtype == DF_DTYPE_I32 && t->numel == 3 && t->nbytes == 12);
    if (t) {
        int32_t got[3];
        memcpy(got, t->data, sizeof got);
        EXPECT_EQ_I64(got[0], 49406);
        EXPECT_EQ_I64(got[1], -7);
        EXPECT_EQ_I64(got[2], 2147483647);
    }
    t = df_st_find(f, "e.u8");
    EXPECT_TRUE(t && t->dtype == DF_DTYPE_U8 && t->ndim == 4 && t->shape[3] == 3 &&
                t->numel == 12);
    if (t) EXPECT_TRUE(memcmp(t->data, u8, sizeof u8) == 0);
    t = df_st_find(f, "f.scalar");
    EXPECT_TRUE(t && t->ndim == 0 && t->numel == 1 && t->nbytes == 4);
    t = df_st_find(f, "g.empty");
    EXPECT_TRUE(t && t->ndim == 3 && t->shape[0] == 3 && t->shape[1] == 0 && t->shape[2] == 5 &&
                t->numel == 0 && t->nbytes == 0);
    t = df_st_find(f, "h.i64");
    EXPECT_TRUE(t && t->dtype == DF_DTYPE_I64 && t->nbytes == 16);
    if (t) EXPECT_TRUE(memcmp(t->data, i64, sizeof i64) == 0);
    t = df_st_find(f, "name with \"quotes\" \\ and \x01 ctl");
    EXPECT_TRUE(t && t->numel == 1 && ((const uint8_t *)t->data)[0] == 0);

    // f32 conversion.
    float got[8];
    EXPECT_OK(df_st_read_f32(f, "a.f32", got, 6));
    EXPECT_TRUE(memcmp(got, f32, sizeof f32) == 0);
    EXPECT_OK(df_st_read_f32(f, "b.f16", got, 4));
    df_allclose(got, f16v, 4, 0, 0, "f16->f32");
    EXPECT_OK(df_st_read_f32(f, "c.bf16", got, 5));
    for (int i = 0; i < 5; i++) EXPECT_EQ_I64(df_f32_to_bf16(got[i]), bf16[i]);
    EXPECT_LE_F64(fabs(got[3] - 0.15625), 0);
    EXPECT_OK(df_st_read_f32(f, "f.scalar", got, 1));
    EXPECT_LE_F64(fabs(got[0] - 42.5), 0);
    EXPECT_OK(df_st_read_f32(f, "g.empty", NULL, 0));
    EXPECT_ERR(df_st_read_f32(f, "a.f32", got, 5), DF_ERR_SHAPE, "has 6 elements, expected 5");
    EXPECT_ERR(df_st_read_f32(f, "b.f16", got, 8), DF_ERR_SHAPE, "b.f16");
    EXPECT_ERR(df_st_read_f32(f, "d.i32", got, 3), DF_ERR_SHAPE, "dtype I32");
    EXPECT_ERR(df_st_read_f32(f, "e.u8", got, 12), DF_ERR_SHAPE, "e.u8");
    EXPECT_ERR(df_st_read_f32(f, "zzz", got, 1), DF_ERR_FORMAT, "missing tensor 'zzz'");
    EXPECT_TRUE(strstr(df_last_error(), path) != NULL);
    df_st_close(f);
    df_st_close(NULL);
}

// ---------------------------------------------------------------------------------------------

static void test_golden(void) {
    const char *gd = df_test_golden_dir();
    if (!gd) return;
    char path[4400];
    snprintf(path, sizeof path, "%s/models/tiny-sdxl/unet/diffusion_pytorch_model.safetensors",
             gd);
    df_st_file *f = NULL;
    EXPECT_OK(df_st_open(path, &f));
    if (f) {
        EXPECT_EQ_I64(df_st_count(f), 618);
        EXPECT_TRUE(df_st_metadata(f, "format") &&
                    strcmp(df_st_metadata(f, "format"), "pt") == 0);
        const df_st_tensor *t = df_st_find(f, "conv_in.weight");
        EXPECT_TRUE(t && t->dtype == DF_DTYPE_F16 && t->ndim == 4 && t->shape[0] == 32 &&
                    t->shape[1] == 4 && t->shape[2] == 3 && t->shape[3] == 3 &&
                    t->numel == 1152);
        float w[1152];
        EXPECT_OK(df_st_read_f32(f, "conv_in.weight", w, 1152));
        const float want[4] = {-0.01861572265625f, -0.082763671875f, 0.0271759033203125f,
                               -0.14697265625f};
        df_allclose(w, want, 4, 0, 0, "golden conv_in.weight");
        double sum = 0;
        for (int i = 0; i < 1152; i++) sum += w[i];
        EXPECT_LE_F64(fabs(sum - -15.044369220733643), 1e-9);
        t = df_st_find(f, "add_embedding.linear_1.weight");
        EXPECT_TRUE(t && t->ndim == 2 && t->shape[0] == 128 && t->shape[1] == 80);
        size_t total = 0;
        for (int i = 0; i < df_st_count(f); i++) {
            total += df_st_get(f, i)->numel;
            EXPECT_TRUE(df_st_get(f, i)->dtype == DF_DTYPE_F16);
        }
        EXPECT_EQ_I64((int64_t)total, 3055236); // README: UNet params
        df_st_close(f);
    }

    snprintf(path, sizeof path, "%s/sdxl/unet_32x32_dbg.safetensors", gd);
    f = NULL;
    EXPECT_OK(df_st_open(path, &f));
    if (f) {
        EXPECT_EQ_I64(df_st_count(f), 19);
        const df_st_tensor *t = df_st_find(f, "dbg.conv_in");
        EXPECT_TRUE(t && t->dtype == DF_DTYPE_F32 && t->ndim == 4 && t->shape[0] == 1 &&
                    t->shape[1] == 32 && t->shape[2] == 32 && t->shape[3] == 32);
        float *x = malloc(32 * 32 * 32 * sizeof *x);
        EXPECT_OK(df_st_read_f32(f, "dbg.conv_in", x, 32 * 32 * 32));
        const float want[3] = {0.7472242712974548f, -1.0701836347579956f, 0.23863989114761353f};
        df_allclose(x, want, 3, 0, 0, "golden dbg.conv_in");
        free(x);
        EXPECT_TRUE(df_st_find(f, "out.noise_pred") != NULL);
        EXPECT_TRUE(df_st_find(f, "in.sample") != NULL);
        df_st_close(f);
    }

    snprintf(path, sizeof path, "%s/sdxl/tokenizer.safetensors", gd);
    f = NULL;
    EXPECT_OK(df_st_open(path, &f));
    if (f) {
        const df_st_tensor *t = df_st_find(f, "out.tok1.input_ids");
        EXPECT_TRUE(t && t->dtype == DF_DTYPE_I32 && t->ndim == 2 && t->shape[0] == 30 &&
                    t->shape[1] == 77);
        float tmp[1];
        EXPECT_ERR(df_st_read_f32(f, "out.tok1.input_ids", tmp, 30 * 77), DF_ERR_SHAPE,
                   "only F32/F16/BF16");
        df_st_close(f);
    }

    snprintf(path, sizeof path, "%s/models/tiny-sd15-single/tiny-sd15.safetensors", gd);
    f = NULL;
    EXPECT_OK(df_st_open(path, &f));
    if (f) {
        EXPECT_EQ_I64(df_st_count(f), 917);
        const df_st_tensor *t =
            df_st_find(f, "cond_stage_model.transformer.text_model.embeddings.position_ids");
        EXPECT_TRUE(t && t->dtype == DF_DTYPE_I64 && t->ndim == 2 && t->shape[1] == 77);
        if (t) {
            int64_t v;
            memcpy(&v, (const char *)t->data + 76 * 8, 8);
            EXPECT_EQ_I64(v, 76);
        }
        df_st_close(f);
    }
}

static void test_corrupt(void) {
    char p[512];
    tmp_path(p, sizeof p, "bad.safetensors");
    write_bytes(p, "", 0);
    EXPECT_OPEN_ERR(p, DF_ERR_FORMAT, "empty file");
    write_hdr(p, "[1,2]   ", 0);
    EXPECT_OPEN_ERR(p, DF_ERR_FORMAT, "does not start with '{'");
    unlink(p);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/df_test_st.%ld", (long)getpid());
    if (mkdir(g_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "cannot create %s\n", g_dir);
        return 1;
    }
    test_round_trip();
    test_golden();
    test_corrupt();
    // cleanup is done by the individual tests; remove the directory if empty
    char path[512];
    tmp_path(path, sizeof path, "rt.safetensors");
    unlink(path);
    rmdir(g_dir);
    return df_test_result();
}
