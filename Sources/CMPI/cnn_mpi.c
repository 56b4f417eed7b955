#include "cnn_mpi.h"

#ifdef CNN_WITH_MPI
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
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

// Heartbeats (see the header): one posted receive per peer heard from, a small ring of sends.
enum { HEARTBEAT_TAG = 7401, MAX_SENDS = 256 };
static int world_rank = 0, world_size = 1;
static long *seen = NULL, *received = NULL;
static double *heard_at = NULL;
static MPI_Request *receives = NULL;
static long sent_values[MAX_SENDS];
static MPI_Request sends[MAX_SENDS];
static int send_next = 0;

static void post_receive(int from) {
    MPI_Irecv(&received[from], 1, MPI_LONG, from, HEARTBEAT_TAG, MPI_COMM_WORLD, &receives[from]);
}

static void heartbeat_setup(void) {
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    seen = malloc(sizeof(long) * world_size);
    received = malloc(sizeof(long) * world_size);
    receives = malloc(sizeof(MPI_Request) * world_size);
    heard_at = malloc(sizeof(double) * world_size);
    for (int r = 0; r < world_size; r++) {
        seen[r] = -1;
        heard_at[r] = MPI_Wtime();
        receives[r] = MPI_REQUEST_NULL;
        if (r != world_rank && (world_rank == 0 || r == 0)) post_receive(r);
    }
    for (int i = 0; i < MAX_SENDS; i++) sends[i] = MPI_REQUEST_NULL;
}

void cnn_mpi_heartbeat_poll(void) {
    if (!receives) return;
    for (int r = 0; r < world_size; r++) {
        int done = 0;
        while (receives[r] != MPI_REQUEST_NULL && MPI_Test(&receives[r], &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && done) {
            if (received[r] > seen[r]) seen[r] = received[r];
            heard_at[r] = MPI_Wtime();
            post_receive(r);
            done = 0;
        }
    }
    for (int i = 0; i < MAX_SENDS; i++) {
        int done = 0;
        if (sends[i] != MPI_REQUEST_NULL) MPI_Test(&sends[i], &done, MPI_STATUS_IGNORE);
    }
}

void cnn_mpi_heartbeat(long number) {
    if (!receives) return;
    cnn_mpi_heartbeat_poll();
    for (int r = 0; r < world_size; r++) {
        if (r == world_rank || (world_rank != 0 && r != 0)) continue;
        // A slot still sending (to a peer that does not receive) is left alone: a heartbeat is never waited for.
        if (sends[send_next] != MPI_REQUEST_NULL) return;
        sent_values[send_next] = number;
        MPI_Isend(&sent_values[send_next], 1, MPI_LONG, r, HEARTBEAT_TAG, MPI_COMM_WORLD, &sends[send_next]);
        send_next = (send_next + 1) % MAX_SENDS;
    }
}

long cnn_mpi_heartbeat_seen(int rank) {
    if (!seen || rank < 0 || rank >= world_size) return -1;
    if (rank == world_rank) return LONG_MAX;
    return seen[rank];
}

double cnn_mpi_heartbeat_age(int rank) {
    if (!heard_at || rank < 0 || rank >= world_size || rank == world_rank) return 0;
    return MPI_Wtime() - heard_at[rank];
}

int cnn_mpi_init(void) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return 0;
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) return 1;
    heartbeat_setup();
    return 0;
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
// Starts `start` on a free request slot; -1 when the count is too large, no slot is free or MPI refused.
static int start_request(size_t count, int (*start)(void *, int, MPI_Datatype, int, MPI_Request *), void *buffer,
                         MPI_Datatype type, int root) {
    if (count > INT_MAX) return -1;
    int slot = take_slot();
    if (slot < 0) return -1;
    if (start(buffer, (int)count, type, root, &requests[slot]) != MPI_SUCCESS) {
        in_use[slot] = 0;
        return -1;
    }
    return slot;
}

static int start_sum(void *buffer, int count, MPI_Datatype type, int root, MPI_Request *request) {
    (void)root;
    return MPI_Iallreduce(MPI_IN_PLACE, buffer, count, type, MPI_SUM, MPI_COMM_WORLD, request);
}

static int start_broadcast(void *buffer, int count, MPI_Datatype type, int root, MPI_Request *request) {
    return MPI_Ibcast(buffer, count, type, root, MPI_COMM_WORLD, request);
}

int cnn_mpi_start_sum_float(float *buffer, size_t count) { return start_request(count, start_sum, buffer, MPI_FLOAT, 0); }
int cnn_mpi_start_sum_double(double *buffer, size_t count) { return start_request(count, start_sum, buffer, MPI_DOUBLE, 0); }
int cnn_mpi_start_broadcast(void *buffer, size_t bytes, int root) {
    return start_request(bytes, start_broadcast, buffer, MPI_BYTE, root);
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
    if (finalized) return;
    // Every rank is here: the heartbeats still in flight are taken in, the receives still posted withdrawn.
    MPI_Barrier(MPI_COMM_WORLD);
    for (int i = 0; i < MAX_SENDS; i++) {
        if (sends[i] != MPI_REQUEST_NULL) MPI_Wait(&sends[i], MPI_STATUS_IGNORE);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    cnn_mpi_heartbeat_poll();
    for (int r = 0; receives && r < world_size; r++) {
        if (receives[r] != MPI_REQUEST_NULL) {
            MPI_Cancel(&receives[r]);
            MPI_Wait(&receives[r], MPI_STATUS_IGNORE);
        }
    }
    MPI_Finalize();
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
void cnn_mpi_heartbeat(long number) { (void)number; }
void cnn_mpi_heartbeat_poll(void) {}
long cnn_mpi_heartbeat_seen(int rank) { (void)rank; return -1; }
double cnn_mpi_heartbeat_age(int rank) { (void)rank; return 0; }
void cnn_mpi_abort(int status) { (void)status; }
void cnn_mpi_finalize(void) {}

#endif
