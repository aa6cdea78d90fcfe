// Caption lists, shards and output names of batch generation (include/distrifuse/pipeline.h).
#include "df_test.h"

#include "distrifuse/df.h"

#include "core/core.h"
#include "io/image_png.h"

#include <unistd.h>

static df_prompt_list *parse(const char *text) {
    df_prompt_list *l = NULL;
    if (df_prompt_list_parse(text, strlen(text), "t", &l) != DF_OK) return NULL;
    return l;
}

static int list_is(const df_prompt_list *l, int n, const char *const *want) {
    if (!l || df_prompt_list_count(l) != n) return 0;
    for (int i = 0; i < n; i++)
        if (strcmp(df_prompt_list_get(l, i), want[i]) != 0) return 0;
    return df_prompt_list_get(l, n) == NULL && df_prompt_list_get(l, -1) == NULL;
}

static void test_prompt_lists(void) {
    const char *abc[] = {"a cat", "  b dog ", "[c]"};
    struct { const char *text; } same[] = {
        {"a cat\n  b dog \n[c]\n"},
        {"a cat\r\n\r\n  b dog \r\n\t\n[c]"},           // CRLF, blank lines, no final newline
        {"\xef\xbb\xbf" "a cat\n  b dog \n[c]\n"},      // BOM
        {" [\"a cat\", \"  b dog \", \"[c]\"] \n"},     // JSON array
        {"{\"9\": \"a cat\", \"10\": \"  b dog \", \"1\": \"[c]\"}"}, // object: file order
    };
    for (size_t k = 0; k < sizeof same / sizeof same[0]; k++) {
        df_prompt_list *l = parse(same[k].text);
        EXPECT_TRUE(list_is(l, 3, abc));
        df_prompt_list_free(l);
    }
    const char *uni[] = {"caf\xc3\xa9 \"quoted\"", "line\nbreak"};
    df_prompt_list *l = parse("[\"caf\\u00e9 \\\"quoted\\\"\", \"line\\nbreak\"]");
    EXPECT_TRUE(list_is(l, 2, uni));
    df_prompt_list_free(l);
    df_prompt_list *o = NULL;
    EXPECT_ERR(df_prompt_list_parse("", 0, "e.txt", &o), DF_ERR_FORMAT, "e.txt: no captions");
    EXPECT_ERR(df_prompt_list_parse(" \n\r\n", 4, "b", &o), DF_ERR_FORMAT, "no captions");
    EXPECT_ERR(df_prompt_list_parse("[]", 2, "j", &o), DF_ERR_FORMAT, "array holds no captions");
    EXPECT_ERR(df_prompt_list_parse("{}", 2, "j", &o), DF_ERR_FORMAT, "object holds no captions");
    EXPECT_ERR(df_prompt_list_parse("[\"a\",\n 1]", 9, "j", &o), DF_ERR_FORMAT,
               "item 1 of the JSON array is not a string");
    EXPECT_ERR(df_prompt_list_parse("{\"k\": [\"a\"]}", 12, "j", &o), DF_ERR_FORMAT,
               "the value of key 'k' is not a string");
    EXPECT_ERR(df_prompt_list_parse("[\"a\"] x", 7, "j", &o), DF_ERR_FORMAT,
               "not valid JSON (error at line 1, column");
    EXPECT_ERR(df_prompt_list_parse("{\"a\": \"b\"\n", 10, "j", &o), DF_ERR_FORMAT,
               "not valid JSON");
    EXPECT_ERR(df_prompt_list_parse("a\0b", 3, "z", &o), DF_ERR_FORMAT, "NUL byte");
    EXPECT_TRUE(o == NULL);
    EXPECT_ERR(df_prompt_list_load("/nonexistent/caps.txt", &o), DF_ERR_IO, "caps.txt");
    // from a file
    char path[64];
    snprintf(path, sizeof path, "/tmp/df_test_batch_%d.txt", (int)getpid());
    FILE *f = fopen(path, "wb");
    EXPECT_TRUE(f != NULL);
    if (f) {
        fputs("a cat\n  b dog \n[c]\n", f);
        fclose(f);
        EXPECT_OK(df_prompt_list_load(path, &o));
        EXPECT_TRUE(list_is(o, 3, abc));
        df_prompt_list_free(o);
        unlink(path);
    }
    df_prompt_list_free(NULL);
}

static void test_shards(void) {
    // {n, k, N, begin, end}: chunk = ceil(n / N)
    const int c[][5] = {{5, 0, 3, 0, 2}, {5, 1, 3, 2, 4}, {5, 2, 3, 4, 5}, {5, 3, 4, 5, 5},
                        {10, 3, 4, 9, 10}, {3, 4, 5, 3, 3}, {3, 2, 5, 2, 3}, {5000, 7, 8, 4375, 5000},
                        {5000, 0, 1, 0, 5000}, {0, 0, 2, 0, 0}, {1, 0, 1, 0, 1}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        int b = -1, e = -1;
        df_batch_shard(c[i][0], c[i][1], c[i][2], &b, &e);
        EXPECT_EQ_I64(b, c[i][3]);
        EXPECT_EQ_I64(e, c[i][4]);
    }
    // the shards partition [0, n) in order
    for (int n = 0; n < 40; n++)
        for (int N = 1; N < 9; N++) {
            int next = 0;
            for (int k = 0; k < N; k++) {
                int b, e;
                df_batch_shard(n, k, N, &b, &e);
                EXPECT_TRUE(b == (next < n ? next : n) && e >= b && e <= n);
                next = e;
            }
            EXPECT_EQ_I64(next, n);
        }
}

static void test_names(void) {
    char buf[256];
    df_batch_dir_path("out", 7, buf, sizeof buf);
    EXPECT_TRUE(strcmp(buf, "out/0007.png") == 0);
    df_batch_dir_path("/a/b/", 12345, buf, sizeof buf);
    EXPECT_TRUE(strcmp(buf, "/a/b/12345.png") == 0);
    const char *cases[][3] = {{"out.png", "out.png", "out_3.png"},
                              {"dir.v1/img", "dir.v1/img.png", "dir.v1/img_3.png"},
                              {"x.jpg", "x.png", "x_3.png"},
                              {".hidden", ".hidden.png", ".hidden_3.png"},
                              {"a/b.c.png", "a/b.c.png", "a/b.c_3.png"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        df_batch_output_path(cases[i][0], 0, buf, sizeof buf);
        EXPECT_TRUE(strcmp(buf, cases[i][1]) == 0);
        df_batch_output_path(cases[i][0], 2, buf, sizeof buf);
        EXPECT_TRUE(strcmp(buf, cases[i][2]) == 0);
    }
}

static void test_png_complete(void) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/df_test_batch_%d.png", (int)getpid());
    uint8_t rgb[16 * 8 * 3];
    for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)(i * 37);
    const char *k[1] = {"parameters"}, *v[1] = {"a cat\nSteps: 4"};
    EXPECT_OK(df_png_write(path, rgb, 16, 8, k, v, 1));
    EXPECT_TRUE(df_image_png_complete(path, "a cat\nSteps: 4"));
    EXPECT_TRUE(df_image_png_complete(path, NULL));
    EXPECT_TRUE(!df_image_png_complete(path, "a cat\nSteps: 5"));
    // truncated
    FILE *f = fopen(path, "rb");
    uint8_t data[8192];
    size_t n = f ? fread(data, 1, sizeof data, f) : 0;
    if (f) fclose(f);
    EXPECT_TRUE(n > 100);
    for (size_t cut = 8; cut < n; cut += (n - 8) / 7 + 1) {
        f = fopen(path, "wb");
        if (f) {
            fwrite(data, 1, cut, f);
            fclose(f);
        }
        EXPECT_TRUE(!df_image_png_complete(path, NULL));
    }
    unlink(path);
    EXPECT_TRUE(!df_image_png_complete(path, NULL));
}

int main(void) {
    test_prompt_lists();
    test_shards();
    test_names();
    test_png_complete();
    return df_test_result();
}
