// Releasing the resident pages of mmapped weights (issue 11 item 8): df_st_release_pages /
// df_weights_release_pages drop a tensor's pages from the RSS (MADV_DONTNEED), the data reads
// back unchanged (faulted in again from the page cache), ranges outside the mapping and owned
// tensors are untouched.
#include "df_test.h"
#include "io/safetensors.h"
#include "model/weights.h"

#include <stdio.h>
#include <unistd.h>

static double rss_mib(void) { // current resident set (statm field 2), MiB
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = -1;
    fclose(f);
    return res < 0 ? -1 : (double)res * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

static double sum(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s;
}

int main(void) {
    if (rss_mib() < 0) {
        printf("SKIP: /proc/self/statm not readable\n");
        return 77;
    }
    enum { N = 16 << 20 }; // 64 MiB of f32
    float *data = malloc((size_t)N * sizeof(float));
    for (size_t i = 0; i < N; i++) data[i] = (float)(i % 1000) * 0.5f;
    const double want = sum(data, N);
    char path[] = "/tmp/df_test_release_XXXXXX";
    int fd = mkstemp(path);
    EXPECT_TRUE(fd >= 0);
    close(fd);
    df_st_writer *wr = NULL;
    EXPECT_OK(df_st_writer_create(&wr));
    const int64_t shape[1] = {N}, small[1] = {4};
    EXPECT_OK(df_st_writer_add(wr, "big", DF_DTYPE_F32, 1, shape, data));
    EXPECT_OK(df_st_writer_add(wr, "small", DF_DTYPE_F32, 1, small, data));
    EXPECT_OK(df_st_write(wr, path));
    df_st_writer_destroy(wr);

    df_weights *w = NULL;
    EXPECT_OK(df_weights_open(path, &w));
    const df_st_tensor *big = df_weights_find(w, "big");
    EXPECT_TRUE(big != NULL);
    // an owned tensor in the same table must survive the release
    float *own = malloc(4096 * sizeof(float));
    for (int i = 0; i < 4096; i++) own[i] = 3.0f;
    const int64_t oshape[1] = {4096};
    EXPECT_OK(df_i_weights_add_owned(w, "owned", DF_DTYPE_F32, 1, oshape, own));
    if (big) {
        const double r0 = rss_mib();
        EXPECT_TRUE(sum(big->data, N) == want); // faults every page in
        const double r1 = rss_mib();
        const size_t adv = df_weights_release_pages(w);
        const double r2 = rss_mib();
        printf("RSS %.1f MiB -> %.1f after reading the 64 MiB tensor -> %.1f after the release "
               "(%zu bytes advised)\n", r0, r1, r2, adv);
        EXPECT_GE_F64(r1 - r0, 48.0);
        EXPECT_GE_F64(r1 - r2, 48.0);
        EXPECT_TRUE(adv >= (size_t)N * sizeof(float));
        EXPECT_TRUE(sum(big->data, N) == want); // reads back unchanged
        const float *o = df_weights_find(w, "owned")->data;
        EXPECT_TRUE(o[0] == 3.0f && o[4095] == 3.0f);
        // memory outside the mapping is ignored
        EXPECT_TRUE(df_weights_release_pages(NULL) == 0);
    }
    df_weights_destroy(w);
    remove(path);
    free(data);
    return df_test_result();
}
