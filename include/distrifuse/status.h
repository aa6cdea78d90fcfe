// distrifuse: status codes and the last-error convention.
// Every library function that can fail returns df_status and records a specific message
// (file, tensor name, expected vs actual) retrievable with df_last_error(). The library never
// prints errors itself and never exits.
#ifndef DF_STATUS_H
#define DF_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum df_status {
    DF_OK = 0,
    DF_ERR_ARG,         // caller passed an invalid argument
    DF_ERR_NOMEM,       // allocation failed
    DF_ERR_IO,          // open/read/write/mmap failed; errno text in the message
    DF_ERR_FORMAT,      // malformed file (safetensors, json, config)
    DF_ERR_SHAPE,       // shapes/dtypes do not match what is expected
    DF_ERR_UNSUPPORTED, // valid request that is not implemented
    DF_ERR_COMM,        // MPI or transport failure
    DF_ERR_INTERNAL,    // invariant broken inside the library (a bug)
    DF_ERR_NONFINITE,   // NaN or Inf in the latents or activations (df_gen_params.check_finite)
    DF_ERR_PEER,        // another rank failed (a collective call agreed on its failure)
    DF_STATUS_COUNT
} df_status;

// "DF_ERR_SHAPE"; never NULL.
const char *df_status_str(df_status s);
// Message recorded by the most recent failure on this thread ("" if none).
const char *df_last_error(void);
// Clears the thread's last error.
void df_clear_error(void);

#ifdef __cplusplus
}
#endif
#endif // DF_STATUS_H
