// distrifuse umbrella header: everything an application needs (status codes, the text-to-image
// pipeline). MPI-free: the distributed runtime's headers are not included.
#ifndef DF_DF_H
#define DF_DF_H

#include "distrifuse/engine.h"
#include "distrifuse/pipeline.h"
#include "distrifuse/status.h"
#include "distrifuse/util.h"
#include "distrifuse/version.h"

#endif // DF_DF_H
