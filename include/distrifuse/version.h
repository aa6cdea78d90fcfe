// distrifuse: library version.
#ifndef DF_VERSION_H
#define DF_VERSION_H

#ifdef __cplusplus
extern "C" {
#endif

#define DF_VERSION_MAJOR 0
#define DF_VERSION_MINOR 1
#define DF_VERSION_PATCH 0
#define DF_VERSION_STRING "0.1.0"
// (MAJOR * 100 + MINOR) * 100 + PATCH, for compile-time checks
#define DF_VERSION_NUMBER ((DF_VERSION_MAJOR * 100 + DF_VERSION_MINOR) * 100 + DF_VERSION_PATCH)

// The version of the linked library ("0.1.0"); may differ from the header's DF_VERSION_STRING.
const char *df_version(void);
// DF_VERSION_NUMBER of the linked library.
int df_version_number(void);

#ifdef __cplusplus
}
#endif
#endif // DF_VERSION_H
