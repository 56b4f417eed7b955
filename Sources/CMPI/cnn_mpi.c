#include "cnn_mpi.h"

#ifdef CNN_WITH_MPI
#include <limits.h>
#include <mpi.h>
#include <string.h>

// Requests live in a small table; a number is an index into it. Training keeps at most a few dozen pending (one per
// gradient bucket), so 4,096 is never reached in practice; -1 tells the caller if it were.
enum { MAX_REQUESTS = 4096 };
static MPI_Request requests[MAX_REQUESTS];
static int in_use[MAX_REQUESTS];
static int next_free = 0;

static int take_slot(void) {
    for (int k = 0; k < MAX_REQUESTS; k++) {
        int i = (next_free + k) % MAX_REQUESTS;
        if (!in_use[i]) {
            in_use[i] = 1;
            next_free = (i + 1) % MAX_REQUESTS;
            return i;
        }
    }
    return -1;
}

int cnn_mpi_built_in(void) { return 1; }

int cnn_mpi_init(void) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return 0;
    int provided = 0;
    return MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) == MPI_SUCCESS ? 0 : 1;
}

int cnn_mpi_rank(void) {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank;
}

int cnn_mpi_size(void) {
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    return size;
}

const char *cnn_mpi_processor_name(void) {
    static char name[MPI_MAX_PROCESSOR_NAME + 1];
    int length = 0;
    if (MPI_Get_processor_name(name, &length) != MPI_SUCCESS) return "?";
    name[length] = 0;
    return name;
}

// MPI counts are ints: a buffer above INT_MAX elements is refused (-1) rather than truncated. Gradient buckets are
// megabytes, and the largest broadcast (VGG's 138 million weights) is far below the limit.
int cnn_mpi_start_sum_float(float *buffer, size_t count) {
    if (count > INT_MAX) return -1;
    int slot = take_slot();
    if (slot < 0) return -1;
    if (MPI_Iallreduce(MPI_IN_PLACE, buffer, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &requests[slot]) != MPI_SUCCESS) {
        in_use[slot] = 0;
        return -1;
    }
    return slot;
}

int cnn_mpi_start_sum_double(double *buffer, size_t count) {
    if (count > INT_MAX) return -1;
    int slot = take_slot();
    if (slot < 0) return -1;
    if (MPI_Iallreduce(MPI_IN_PLACE, buffer, (int)count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &requests[slot]) != MPI_SUCCESS) {
        in_use[slot] = 0;
        return -1;
    }
    return slot;
}

int cnn_mpi_start_broadcast(void *buffer, size_t bytes, int root) {
    if (bytes > INT_MAX) return -1;
    int slot = take_slot();
    if (slot < 0) return -1;
    if (MPI_Ibcast(buffer, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD, &requests[slot]) != MPI_SUCCESS) {
        in_use[slot] = 0;
        return -1;
    }
    return slot;
}

int cnn_mpi_test(int request) {
    if (request < 0 || request >= MAX_REQUESTS || !in_use[request]) return -1;
    int done = 0;
    if (MPI_Test(&requests[request], &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) return -1;
    if (done) in_use[request] = 0;
    return done ? 1 : 0;
}

void cnn_mpi_abort(int status) { MPI_Abort(MPI_COMM_WORLD, status); }

void cnn_mpi_finalize(void) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
}

#else

int cnn_mpi_built_in(void) { return 0; }
int cnn_mpi_init(void) { return 1; }
int cnn_mpi_rank(void) { return 0; }
int cnn_mpi_size(void) { return 1; }
const char *cnn_mpi_processor_name(void) { return "?"; }
int cnn_mpi_start_sum_float(float *buffer, size_t count) { (void)buffer; (void)count; return -1; }
int cnn_mpi_start_sum_double(double *buffer, size_t count) { (void)buffer; (void)count; return -1; }
int cnn_mpi_start_broadcast(void *buffer, size_t bytes, int root) { (void)buffer; (void)bytes; (void)root; return -1; }
int cnn_mpi_test(int request) { (void)request; return -1; }
void cnn_mpi_abort(int status) { (void)status; }
void cnn_mpi_finalize(void) {}

#endif
