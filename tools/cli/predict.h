// distrifuse-bench --predict (tools/cli/predict.c): the scaling model; runs no generation.
#ifndef DF_CLI_PREDICT_H
#define DF_CLI_PREDICT_H

// argv as given to distrifuse-bench (containing --predict); returns the exit status.
int df_bench_predict(int argc, char **argv);

#endif // DF_CLI_PREDICT_H
