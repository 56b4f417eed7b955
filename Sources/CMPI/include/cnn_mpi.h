// The few MPI calls that data-parallel training makes, as plain C functions over plain types: Open MPI's handles
// (MPI_COMM_WORLD, MPI_FLOAT, MPI_Request) are macros and pointers into the library, which Swift cannot import.
// Built only with the package trait MPI (CNN_WITH_MPI); without it every function reports that MPI is missing.
#ifndef CNN_MPI_H
#define CNN_MPI_H

#include <stddef.h>

/// 1 when this build has MPI (the package trait MPI), 0 otherwise.
int cnn_mpi_built_in(void);
/// MPI_Init_thread with MPI_THREAD_FUNNELED (only the thread that called it makes MPI calls). 0 on success.
int cnn_mpi_init(void);
int cnn_mpi_rank(void);
int cnn_mpi_size(void);
/// The host name MPI gives this process (MPI_Get_processor_name), in a static buffer.
const char *cnn_mpi_processor_name(void);

/// Starts summing `count` floats at `buffer` over every rank, in place (MPI_Iallreduce). Returns a request number,
/// or -1 when no request slot is free or MPI refused.
int cnn_mpi_start_sum_float(float *buffer, size_t count);
/// Starts summing `count` doubles in place over every rank. Returns a request number or -1.
int cnn_mpi_start_sum_double(double *buffer, size_t count);
/// Starts sending `bytes` bytes from `root`'s buffer to every other rank's (MPI_Ibcast). Returns a request number
/// or -1.
int cnn_mpi_start_broadcast(void *buffer, size_t bytes, int root);
/// 1 when the request is complete (its slot is then free), 0 while it is pending, -1 on an error. Calling it also
/// lets the library progress the other pending requests.
int cnn_mpi_test(int request);

/// Heartbeats, to name a rank that hangs: before each collective a rank sends its number (the count of collectives
/// it has joined) to rank 0, and rank 0 sends its own to every rank, as tiny non-blocking messages on their own tag.
/// `cnn_mpi_heartbeat_poll` takes in what has arrived; `cnn_mpi_heartbeat_seen(r)` is the last number heard from
/// rank r (-1 before any; rank 0 hears from every rank, the others from rank 0 only).
void cnn_mpi_heartbeat(long number);
void cnn_mpi_heartbeat_poll(void);
long cnn_mpi_heartbeat_seen(int rank);
/// Seconds since the last heartbeat from rank r arrived (since joining the job, before any).
double cnn_mpi_heartbeat_age(int rank);

/// MPI_Abort on every rank of the job with this exit status.
void cnn_mpi_abort(int status);
void cnn_mpi_finalize(void);

#endif
