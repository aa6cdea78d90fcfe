// Blocking MPI_Allgather rate on a link: the time per all-gather of 8 B .. 4 MiB per rank and the
// rate each way it implies. A link calibration for `distrifuse-bench --predict --link-gbit` of the
// synchronous modes (bench/predict_validate.py; docs/scaling.md):
//   mpicc -O2 -o build/mpi_allgather_rate bench/mpi_allgather_rate.c
//   scripts/cluster.sh up 2 --rate 10gbit && scripts/cluster.sh mpirun -n 2 -- build/mpi_allgather_rate
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int r, n; MPI_Comm_rank(MPI_COMM_WORLD, &r); MPI_Comm_size(MPI_COMM_WORLD, &n);
    long sizes[] = {8, 4096, 65536, 262144, 1048576, 4194304};
    for (int si = 0; si < 6; si++) {
        long sz = sizes[si];
        char *b = calloc(n, sz);
        int it = sz >= 1048576 ? 20 : 200;
        MPI_Barrier(MPI_COMM_WORLD);
        for (int i = 0; i < 3; i++) MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, b, (int)sz, MPI_BYTE, MPI_COMM_WORLD);
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (int i = 0; i < it; i++) MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, b, (int)sz, MPI_BYTE, MPI_COMM_WORLD);
        double t = (MPI_Wtime() - t0) / it;
        if (r == 0) printf("allgather %8ld B per rank: %9.1f us  (%.2f Gbit/s each way)\n", sz, t * 1e6, sz * 8 / t / 1e9);
        free(b);
    }
    MPI_Finalize();
    return 0;
}
