// core/textfile.h (whole-file read, Python json tokens) and io/json_util.h (typed config fields).
#include "df_test.h"

#include "core/textfile.h"
#include "io/json_util.h"

#include <unistd.h>

static void test_read_file(void) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/df_test_json_util_%d.txt", (int)getpid());
    // 20000 bytes: more than one read chunk
    FILE *f = fopen(path, "wb");
    EXPECT_TRUE(f != NULL);
    if (!f) return;
    for (int i = 0; i < 20000; i++) fputc('a' + i % 26, f);
    fclose(f);
    char *buf = NULL;
    size_t len = 0;
    EXPECT_OK(df_read_text_file(path, 20000, 0, &buf, &len));
    EXPECT_EQ_I64(len, 20000);
    EXPECT_TRUE(buf && buf[0] == 'a' && buf[19999] == 'a' + 19999 % 26 && buf[20000] == 0);
    free(buf);
    EXPECT_ERR(df_read_text_file(path, 19999, 0, &buf, &len), DF_ERR_FORMAT,
               "larger than 19999 bytes");
    EXPECT_TRUE(buf == NULL);
    unlink(path);
    EXPECT_ERR(df_read_text_file(path, 100, 0, &buf, NULL), DF_ERR_IO, "cannot open");
    EXPECT_OK(df_read_text_file(path, 100, 1, &buf, &len)); // optional: absent is fine
    EXPECT_TRUE(buf == NULL && len == 0);
}

static void test_python_tokens(void) {
    char *s = df_json_from_python("{\"a\": -Infinity, \"b\": [Infinity, NaN], "
                                  "\"c\": \"NaN \\\" Infinity\"}");
    EXPECT_TRUE(s && strcmp(s, "{\"a\": -1e999, \"b\": [1e999, null], "
                               "\"c\": \"NaN \\\" Infinity\"}") == 0);
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    EXPECT_TRUE(j != NULL);
    if (j) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "a");
        EXPECT_TRUE(cJSON_IsNumber(a) && isinf(a->valuedouble) && a->valuedouble < 0);
    }
    cJSON_Delete(j);
    free(s);
}

static void test_fields(void) {
    cJSON *r = NULL;
    EXPECT_ERR(df_json_parse_object("[1]", "x.json", &r), DF_ERR_FORMAT,
               "x.json: not a JSON object");
    EXPECT_ERR(df_json_parse_object("{", "x.json", &r), DF_ERR_FORMAT, "not a JSON object");
    EXPECT_TRUE(r == NULL);
    EXPECT_OK(df_json_parse_object("{\"i\": 7, \"f\": 1.5, \"big\": 1e10, \"n\": null, "
                                   "\"b\": true, \"s\": \"hi\"}",
                                   "x.json", &r));
    if (!r) return;
    int i = -1;
    EXPECT_OK(df_json_int(r, "x.json", "i", 1, 10, &i));
    EXPECT_EQ_I64(i, 7);
    i = -1;
    EXPECT_OK(df_json_int(r, "x.json", "absent", 1, 10, &i));
    EXPECT_OK(df_json_int(r, "x.json", "n", 1, 10, &i));
    EXPECT_EQ_I64(i, -1); // absent / null keep the value
    EXPECT_ERR(df_json_int(r, "x.json", "i", 1, 6, &i), DF_ERR_FORMAT,
               "x.json: \"i\" must be an integer in [1, 6]");
    EXPECT_ERR(df_json_int(r, "x.json", "f", 1, 6, &i), DF_ERR_FORMAT, "\"f\"");
    EXPECT_ERR(df_json_int(r, "x.json", "big", -DF_JSON_INT_MAX, DF_JSON_INT_MAX, &i),
               DF_ERR_FORMAT, "\"big\" must be an integer");
    EXPECT_ERR(df_json_int(r, "x.json", "s", 1, 6, &i), DF_ERR_FORMAT, "\"s\"");
    EXPECT_EQ_I64(i, -1);
    double d = 0;
    EXPECT_OK(df_json_num(r, "x.json", "f", &d));
    EXPECT_TRUE(d == 1.5);
    EXPECT_ERR(df_json_num(r, "x.json", "b", &d), DF_ERR_FORMAT, "\"b\" must be a number");
    int b = 0;
    EXPECT_OK(df_json_bool(r, "x.json", "b", &b));
    EXPECT_EQ_I64(b, 1);
    EXPECT_ERR(df_json_bool(r, "x.json", "i", &b), DF_ERR_FORMAT, "\"i\" must be true or false");
    const char *s = "def";
    EXPECT_OK(df_json_str(r, "x.json", "absent", &s));
    EXPECT_TRUE(strcmp(s, "def") == 0);
    EXPECT_OK(df_json_str(r, "x.json", "s", &s));
    EXPECT_TRUE(strcmp(s, "hi") == 0);
    EXPECT_OK(df_json_str(r, "x.json", "n", &s));
    EXPECT_TRUE(s == NULL);
    EXPECT_ERR(df_json_str(r, "x.json", "i", &s), DF_ERR_FORMAT, "\"i\" must be a string");
    EXPECT_TRUE(df_json_is_int(cJSON_GetObjectItemCaseSensitive(r, "i")));
    EXPECT_TRUE(!df_json_is_int(cJSON_GetObjectItemCaseSensitive(r, "f")));
    cJSON_Delete(r);
    EXPECT_ERR(df_json_load_object("/nonexistent/config.json", 100, &r), DF_ERR_IO,
               "/nonexistent/config.json: cannot open");
}

int main(void) {
    test_read_file();
    test_python_tokens();
    test_fields();
    return df_test_result();
}
