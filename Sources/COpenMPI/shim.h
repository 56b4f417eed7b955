// Open MPI's header, found through pkg-config (ompi-c). Only the C shim in CMPI includes it: MPI's handles and
// constants are macros over Open MPI's internal symbols, which Swift cannot import.
#include <mpi.h>
