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

// Headers (followed by `data` data bytes) the reader must reject with DF_ERR_FORMAT and a message
// containing `needle`.
static const struct bad_header {
    const char *hdr;
    size_t data;
    const char *needle;
} k_bad_headers[] = {
    // 3. header not JSON / not an object / trailing garbage
    {"{not json}", 0, "header is not valid JSON"},
    {"{\"t\":{\"dtype\":\"F32\"", 0, "header is not valid JSON"}, // unterminated
    {"{\"t\\", 0, "header is not valid JSON"}, // string ending in a backslash (old cJSON over-read)
    {"[1,2]   ", 0, "does not start with '{'"},
    {" {}     ", 0, "does not start with '{'"},
    {"\"{abc\"  ", 0, "does not start with '{'"},
    {"{}  xx  ", 0, "trailing garbage"},
    {"{}{}    ", 0, "trailing garbage"},
    // 4. entries
    {"{\"t\":[1,2]}", 0, "tensor 't': entry is not a JSON object"},
    {"{\"t\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "tensor 't': missing \"dtype\""},
    {"{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "tensor 't': missing \"shape\""},
    {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "tensor 't': missing \"data_offsets\""},
    {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"offsets\":[0,8]}}", 8, "missing \"data_offsets\""},
    // 5. dtype
    {"{\"t\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 8,
     "unknown dtype \"F8_E4M3\""},
    {"{\"t\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
     "unknown dtype \"f32\""},
    {"{\"t\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "\"dtype\" is not a string"},
    // 6. shape
    {"{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
     "shape[0] is not a non-negative integer"},
    {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1.5],\"data_offsets\":[0,8]}}", 8,
     "shape[1] is not a non-negative integer"},
    {"{\"t\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8,
     "shape[0] is not a non-negative integer"},
    {"{\"t\":{\"dtype\":\"F32\",\"shape\":[0,1e400],\"data_offsets\":[0,0]}}", 8,
     "shape[1] is not a non-negative integer"},
    {"{\"t\":{\"dtype\":\"F32\",\"shape\":[0,9223372036854775808],"
     "\"data_offsets\":[0,0]}}", 8, "shape[1] is not a non-negative integer"},
    {"{\"t\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8,
     "\"shape\" is not an array"},
    {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],"
     "\"data_offsets\":[0,8]}}", 8, "shape has 9 dims (max 8)"},
    // 7. shape product / byte size overflow
    {"{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,2],"
     "\"data_offsets\":[0,8]}}", 8, "shape product overflows"},
    {"{\"t\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
     "\"data_offsets\":[0,8]}}", 8, "byte size (shape product x dtype size) overflows"},
    // 8. data_offsets
    {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 8,
     "data_offsets end 16 is past the data section (8 bytes)"},
    {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],"
     "\"data_offsets\":[18446744073709551608,18446744073709551616]}}", 8,
     "\"data_offsets\" are not non-negative integers"},
    {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8,
     "data_offsets begin 8 > end 0"},
    {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8,
     "\"data_offsets\" are not non-negative integers"},
    {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.5]}}", 8,
     "\"data_offsets\" are not non-negative integers"},
    {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4,8]}}", 8,
     "\"data_offsets\" is not a [begin, end] array"},
    {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{\"a\":0}}}", 8,
     "\"data_offsets\" is not a [begin, end] array"},
    // 9. size mismatch between shape and offsets
    {"{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 16,
     "size mismatch: shape x F32 needs 12 bytes"},
    {"{\"t\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[0,4]}}", 8,
     "size mismatch: shape x F16 needs 2 bytes"},
    {"{\"t\":{\"dtype\":\"F16\",\"shape\":[4,0],\"data_offsets\":[0,2]}}", 8, "size mismatch"},
    // 10. overlapping regions
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 16,
     "overlapping data regions: tensor 'a' [0, 8) and tensor 'b'"},
    {"{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[3,5]},"
     "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16,
     "overlapping data regions"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 16,
     "overlapping data regions"},
    // 11. duplicate names
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
     "duplicate tensor name 'a'"},
    {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate \"__metadata__\""},
    // 12. metadata
    {"{\"__metadata__\":[\"pt\"]}", 0, "\"__metadata__\" is not a JSON object"},
    {"{\"__metadata__\":{\"format\":\"pt\",\"n\":3}}", 0,
     "__metadata__ value for 'n' is not a string"},
};

static void test_corrupt(void) {
    char p[512];
    tmp_path(p, sizeof p, "bad.safetensors");
    const char *E = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";

    // Sanity: the base entry is valid.
    write_hdr(p, E, 8);
    df_st_file *ok = NULL;
    EXPECT_OK(df_st_open(p, &ok));
    df_st_close(ok);

    // 1. empty file / shorter than 8 bytes
    write_bytes(p, "", 0);
    EXPECT_OPEN_ERR(p, DF_ERR_FORMAT, "empty file");
    write_bytes(p, "\x02\x00\x00\x00\x00", 5);
    EXPECT_OPEN_ERR(p, DF_ERR_FORMAT, "shorter than 8 bytes");
    // 2. header length bounds
    write_raw(p, 0, "", 0);
    EXPECT_OPEN_ERR(p, DF_ERR_FORMAT, "header length 0 is too small");
    write_raw(p, 1, "{", 0);
    EXPECT_OPEN_ERR(p, DF_ERR_FORMAT, "header length 1 is too small");
    write_raw(p, strlen(E) + 9, E, 8); // one byte more than header + data
    EXPECT_OPEN_ERR(p, DF_ERR_FORMAT, "is larger than the file");
    write_raw(p, (uint64_t)1 << 63, E, 8);
    EXPECT_OPEN_ERR(p, DF_ERR_FORMAT, "header length 9223372036854775808 exceeds the 100 MB cap");
    write_raw(p, UINT64_MAX, E, 8);
    EXPECT_OPEN_ERR(p, DF_ERR_FORMAT, "exceeds the 100 MB cap");
    write_raw(p, 100000001, E, 8);
    EXPECT_OPEN_ERR(p, DF_ERR_FORMAT, "exceeds the 100 MB cap");
    // 3.-12. malformed headers (k_bad_headers)
    for (size_t i = 0; i < sizeof k_bad_headers / sizeof k_bad_headers[0]; i++) {
        write_hdr(p, k_bad_headers[i].hdr, k_bad_headers[i].data);
        EXPECT_OPEN_ERR(p, DF_ERR_FORMAT, k_bad_headers[i].needle);
    }
    // 3. NUL bytes after the JSON inside the header
    {
        unsigned char b[16] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', 0, 0, 0, 0, 0, 0};
        write_bytes(p, b, sizeof b);
        EXPECT_OPEN_ERR(p, DF_ERR_FORMAT, "trailing garbage");
    }
    // Deep nesting: cJSON's nesting limit, no stack overflow.
    {
        size_t depth = 100000;
        char *h = malloc(depth + 16);
        memcpy(h, "{\"a\":", 5);
        memset(h + 5, '[', depth);
        h[5 + depth] = '\0';
        write_hdr(p, h, 0);
        free(h);
        EXPECT_OPEN_ERR(p, DF_ERR_FORMAT, "header is not valid JSON");
    }
    // 13. I/O errors
    tmp_path(p, sizeof p, "does-not-exist.safetensors");
    EXPECT_OPEN_ERR(p, DF_ERR_IO, "cannot open");
    EXPECT_OPEN_ERR(g_dir, DF_ERR_IO, "not a regular file");
    tmp_path(p, sizeof p, "bad.safetensors");

    // 14. truncated data section: a valid written file cut short at every length must fail
    // (and never crash); the full file opens.
    {
        float v[5] = {1, 2, 3, 4, 5};
        uint16_t h[3] = {1, 2, 3};
        df_st_writer *w = NULL;
        EXPECT_OK(df_st_writer_create(&w));
        EXPECT_OK(df_st_writer_add(w, "v", DF_DTYPE_F32, 1, (int64_t[]){5}, v));
        EXPECT_OK(df_st_writer_add(w, "h", DF_DTYPE_BF16, 2, (int64_t[]){1, 3}, h));
        EXPECT_OK(df_st_writer_meta(w, "format", "pt"));
        char full[512];
        tmp_path(full, sizeof full, "full.safetensors");
        EXPECT_OK(df_st_write(w, full));
        df_st_writer_destroy(w);
        FILE *fp = fopen(full, "rb");
        unsigned char buf[1024];
        size_t n = fp ? fread(buf, 1, sizeof buf, fp) : 0;
        if (fp) fclose(fp);
        EXPECT_TRUE(n > 8 && n < sizeof buf);
        int failures_ok = 0;
        for (size_t len = 0; len < n; len++) {
            write_bytes(p, buf, len);
            df_st_file *f = NULL;
            df_status st = df_st_open(p, &f);
            if (st == DF_ERR_FORMAT && !f && strstr(df_last_error(), p)) failures_ok++;
            df_st_close(f);
        }
        EXPECT_EQ_I64(failures_ok, (int64_t)n);
        write_bytes(p, buf, n - 1);
        EXPECT_OPEN_ERR(p, DF_ERR_FORMAT, "is past the data section");
        write_bytes(p, buf, n);
        df_st_file *f = NULL;
        EXPECT_OK(df_st_open(p, &f));
        EXPECT_EQ_I64(df_st_count(f), 2);
        df_st_close(f);
        unlink(full);
    }
    unlink(p);
}

// Legal but unusual files the reader must accept.
static void test_edge_valid(void) {
    char p[512];
    tmp_path(p, sizeof p, "edge.safetensors");
    df_st_file *f = NULL;

    // Minimal "{}" (N = 2, unpadded), no tensors, no metadata.
    write_hdr(p, "{}", 0);
    EXPECT_OK(df_st_open(p, &f));
    EXPECT_EQ_I64(df_st_count(f), 0);
    EXPECT_TRUE(df_st_find(f, "x") == NULL && df_st_get(f, 0) == NULL);
    EXPECT_TRUE(df_st_metadata(f, "format") == NULL);
    df_st_close(f);

    // Unaligned F32 data (offset 1), a gap, trailing whitespace of all kinds, unknown extra
    // fields, a zero-size tensor at the very end of the data, trailing bytes after the data.
    const char *h = "{\"u\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9],\"x\":[1]},"
                    "\"z\":{\"dtype\":\"I64\",\"shape\":[0],\"data_offsets\":[16,16]},"
                    "\"z2\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
                    "\"g\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[10,12]},"
                    "\"__metadata__\":{\"format\":\"pt\",\"empty\":\"\"}} \t\r\n ";
    {
        size_t hl = strlen(h);
        unsigned char b[512] = {0};
        for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
        memcpy(b + 8, h, hl);
        unsigned char *d = b + 8 + hl;
        const float v[2] = {3.25f, -7.5f};
        memcpy(d + 1, v, 8);
        const uint16_t g = df_f32_to_bf16(-2.0f);
        memcpy(d + 10, &g, 2);
        write_bytes(p, b, 8 + hl + 16);
    }
    EXPECT_OK(df_st_open(p, &f));
    if (f) {
        EXPECT_EQ_I64(df_st_count(f), 4);
        EXPECT_TRUE(strcmp(df_st_get(f, 0)->name, "u") == 0); // header order
        EXPECT_TRUE(strcmp(df_st_get(f, 3)->name, "g") == 0);
        float got[2];
        EXPECT_OK(df_st_read_f32(f, "u", got, 2));
        EXPECT_TRUE(got[0] == 3.25f && got[1] == -7.5f);
        EXPECT_OK(df_st_read_f32(f, "g", got, 1));
        EXPECT_TRUE(got[0] == -2.0f);
        const df_st_tensor *z = df_st_find(f, "z");
        EXPECT_TRUE(z && z->numel == 0 && z->nbytes == 0 && z->ndim == 1);
        EXPECT_TRUE(df_st_metadata(f, "empty") && df_st_metadata(f, "empty")[0] == '\0');
        EXPECT_ERR(df_st_read_f32(f, "z", got, 0), DF_ERR_SHAPE, "dtype I64");
        df_st_close(f);
    }
    unlink(p);
}

// Random mutations of a valid header: never a crash; every failure has a message naming the
// file; every success has tensors inside the data section.
static void test_mutations(void) {
    char p[512];
    tmp_path(p, sizeof p, "mut.safetensors");
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                    "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]},"
                    "\"c\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[32,33]}}   ";
    const size_t hl = strlen(h), nd = 33;
    unsigned char base[512] = {0}, b[512];
    for (int i = 0; i < 8; i++) base[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(base + 8, h, hl);
    const char alphabet[] = "{}[]\",:0123456789-.e \\aFUIBx";
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    int opened = 0, failed = 0, bad_msg = 0, bad_bounds = 0;
    for (int iter = 0; iter < 600; iter++) {
        memcpy(b, base, sizeof b);
        int nmut = 1 + iter % 3;
        for (int m = 0; m < nmut; m++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            size_t pos = 8 + (size_t)((rng >> 33) % hl);
            b[pos] = (unsigned char)alphabet[(rng >> 20) % (sizeof alphabet - 1)];
        }
        write_bytes(p, b, 8 + hl + nd);
        df_st_file *f = NULL;
        df_status st = df_st_open(p, &f);
        if (st == DF_OK) {
            opened++;
            size_t sum = 0;
            for (int i = 0; i < df_st_count(f); i++) {
                const df_st_tensor *t = df_st_get(f, i);
                if (t->nbytes != t->numel * df_dtype_size(t->dtype) || t->nbytes > nd)
                    bad_bounds++;
                sum += t->nbytes;
            }
            if (sum > nd) bad_bounds++; // non-overlapping regions inside the data
        } else {
            failed++;
            if (f || st != DF_ERR_FORMAT || !strstr(df_last_error(), p)) bad_msg++;
        }
        df_st_close(f);
    }
    EXPECT_EQ_I64(bad_msg, 0);
    EXPECT_EQ_I64(bad_bounds, 0);
    EXPECT_TRUE(opened + failed == 600 && failed > 100);
    fprintf(stderr, "  mutations: %d opened, %d rejected\n", opened, failed);
    unlink(p);
}

// ---------------------------------------------------------------------------------------------

static void test_writer(void) {
    char p[512];
    tmp_path(p, sizeof p, "w.safetensors");
    df_st_writer *w = NULL;
    EXPECT_OK(df_st_writer_create(&w));
    float x[4] = {1, 2, 3, 4};
    EXPECT_OK(df_st_writer_add(w, "x", DF_DTYPE_F32, 1, (int64_t[]){4}, x));
    // Argument errors.
    EXPECT_ERR(df_st_writer_add(w, "x", DF_DTYPE_F32, 1, (int64_t[]){4}, x), DF_ERR_ARG,
               "duplicate tensor name 'x'");
    EXPECT_ERR(df_st_writer_add(w, "__metadata__", DF_DTYPE_F32, 1, (int64_t[]){4}, x),
               DF_ERR_ARG, "reserved");
    EXPECT_ERR(df_st_writer_add(w, "n", DF_DTYPE_F32, 1, (int64_t[]){-1}, x), DF_ERR_ARG,
               "is negative");
    EXPECT_ERR(df_st_writer_add(w, "n", DF_DTYPE_F32, 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1},
                                x), DF_ERR_ARG, "ndim 9 out of range");
    EXPECT_ERR(df_st_writer_add(w, "n", DF_DTYPE_COUNT, 1, (int64_t[]){1}, x), DF_ERR_ARG,
               "invalid dtype");
    EXPECT_ERR(df_st_writer_add(w, "n", DF_DTYPE_F32, 1, (int64_t[]){1}, NULL), DF_ERR_ARG,
               "data is NULL");
    EXPECT_ERR(df_st_writer_add(w, "n", DF_DTYPE_F32, 2, (int64_t[]){INT64_MAX, 4}, x),
               DF_ERR_ARG, "overflows");

    // Unwritable path: clean failure, nothing left behind.
    char bad[600], badtmp[700];
    snprintf(bad, sizeof bad, "%s/no-such-dir/out.safetensors", g_dir);
    EXPECT_ERR(df_st_write(w, bad), DF_ERR_IO, "cannot create temporary file");
    EXPECT_TRUE(strstr(df_last_error(), bad) != NULL);
    EXPECT_TRUE(!file_exists(bad));
    // Rename failure (target is a directory): the temp file is removed, the target untouched.
    snprintf(bad, sizeof bad, "%s/adir", g_dir);
    EXPECT_TRUE(mkdir(bad, 0700) == 0);
    EXPECT_ERR(df_st_write(w, bad), DF_ERR_IO, "rename");
    snprintf(badtmp, sizeof badtmp, "%s.tmp.%ld", bad, (long)getpid());
    EXPECT_TRUE(!file_exists(badtmp));
    struct stat sb;
    EXPECT_TRUE(stat(bad, &sb) == 0 && S_ISDIR(sb.st_mode));
    rmdir(bad);

    // Overwrite: second write replaces the first atomically.
    EXPECT_OK(df_st_write(w, p));
    x[0] = 9; // data is read at write time
    EXPECT_OK(df_st_writer_meta(w, "k", "v1"));
    EXPECT_OK(df_st_writer_meta(w, "k", "v2")); // replaces
    EXPECT_OK(df_st_write(w, p));
    df_st_writer_destroy(w);
    df_st_file *f = NULL;
    EXPECT_OK(df_st_open(p, &f));
    if (f) {
        float got[4];
        EXPECT_OK(df_st_read_f32(f, "x", got, 4));
        EXPECT_TRUE(got[0] == 9 && got[3] == 4);
        EXPECT_TRUE(df_st_metadata(f, "k") && strcmp(df_st_metadata(f, "k"), "v2") == 0);
        df_st_close(f);
    }

    // Empty writer: "{}" padded to 8.
    EXPECT_OK(df_st_writer_create(&w));
    EXPECT_OK(df_st_write(w, p));
    df_st_writer_destroy(w);
    EXPECT_TRUE(stat(p, &sb) == 0 && sb.st_size == 16);
    EXPECT_OK(df_st_open(p, &f));
    EXPECT_EQ_I64(df_st_count(f), 0);
    df_st_close(f);
    df_st_writer_destroy(NULL);

    // Many tensors of mixed dtypes: exact bytes back, offsets aligned to the element size
    // (official order: dtype size descending, then name), data packed (file size exact).
    enum { NT = 40 };
    static unsigned char pool[NT][64 * 8];
    const df_dtype dts[6] = {DF_DTYPE_F32, DF_DTYPE_F16, DF_DTYPE_BF16, DF_DTYPE_I32,
                             DF_DTYPE_U8, DF_DTYPE_I64};
    EXPECT_OK(df_st_writer_create(&w));
    size_t data_total = 0;
    for (int i = 0; i < NT; i++) {
        for (size_t k = 0; k < sizeof pool[i]; k++) pool[i][k] = (unsigned char)(i * 31 + k * 7);
        char name[32];
        snprintf(name, sizeof name, "t%02d.%d", (i * 17) % NT, i);
        int64_t shape[3] = {1 + i % 4, 1 + (i / 4) % 4, i % 5};
        int nd = i % 4; // 0..3 dims
        size_t numel = 1;
        for (int d = 0; d < nd; d++) numel *= (size_t)shape[d];
        data_total += numel * df_dtype_size(dts[i % 6]);
        EXPECT_OK(df_st_writer_add(w, name, dts[i % 6], nd, shape, pool[i]));
    }
    EXPECT_OK(df_st_write(w, p));
    df_st_writer_destroy(w);
    EXPECT_OK(df_st_open(p, &f));
    if (f) {
        EXPECT_EQ_I64(df_st_count(f), NT);
        // Data start = file offset 8 + N; the lowest data pointer of a non-empty tensor at
        // offset 0 is the one written first.
        const unsigned char *lo = NULL;
        for (int i = 0; i < NT; i++) {
            const df_st_tensor *t = df_st_get(f, i);
            if (t->nbytes && (!lo || (const unsigned char *)t->data < lo)) lo = t->data;
        }
        int bad_data = 0, bad_align = 0;
        for (int i = 0; i < NT; i++) {
            char name[32];
            snprintf(name, sizeof name, "t%02d.%d", (i * 17) % NT, i);
            const df_st_tensor *t = df_st_find(f, name);
            if (!t || t->dtype != dts[i % 6] || t->ndim != i % 4) {
                bad_data++;
                continue;
            }
            if (t->nbytes && memcmp(t->data, pool[i], t->nbytes) != 0) bad_data++;
            if (t->nbytes && ((size_t)((const unsigned char *)t->data - lo)) %
                                 df_dtype_size(t->dtype)) bad_align++;
        }
        EXPECT_EQ_I64(bad_data, 0);
        EXPECT_EQ_I64(bad_align, 0);
        df_st_close(f);
        FILE *fp = fopen(p, "rb");
        unsigned char le[8] = {0};
        EXPECT_TRUE(fp && fread(le, 1, 8, fp) == 8);
        if (fp) fclose(fp);
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--) hl = (hl << 8) | le[i];
        EXPECT_TRUE(stat(p, &sb) == 0);
        EXPECT_EQ_I64((int64_t)sb.st_size, (int64_t)(8 + hl + data_total));
    }
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
    test_edge_valid();
    test_mutations();
    test_writer();
    // cleanup is done by the individual tests; remove the directory if empty
    char path[512];
    tmp_path(path, sizeof path, "rt.safetensors");
    unlink(path);
    rmdir(g_dir);
    return df_test_result();
}
