// df_version (include/distrifuse/version.h).
#include "distrifuse/version.h"

const char *df_version(void) { return DF_VERSION_STRING; }
int df_version_number(void) { return DF_VERSION_NUMBER; }
