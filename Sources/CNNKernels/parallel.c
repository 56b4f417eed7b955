// A small thread pool for the engine's parallel regions. A LeNet-5 training step has about ten regions of a few
// tens of microseconds each, so waking a sleeping thread through the kernel for each one costs a large share of
// the step. Workers therefore spin briefly (about 50 microseconds) for the next job before sleeping on a condition
// variable: busy during training, asleep when idle.
//
// A job is `chunks` calls of fn(context, chunk); chunk i is always the same piece of work, whichever thread runs
// it, so results do not depend on scheduling. Calls from inside a job, or while another thread's job runs, are
// run inline on the calling thread.
#include "cnn_kernels.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

enum { MAX_WORKERS = 63, SPIN_ROUNDS = 1 << 10 };

static pthread_mutex_t submit_lock = PTHREAD_MUTEX_INITIALIZER;  // one job at a time
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_once_t started = PTHREAD_ONCE_INIT;
static int worker_count;
static _Atomic unsigned generation;  // bumped once per job, to wake the workers
static _Atomic int sleepers;

/// A job, on the submitting thread's stack while it runs. Workers reach it only through `current_job`, and only
/// while counted in `busy`: the submitter clears `current_job`, then waits for `busy` to fall to zero before it
/// returns, so no worker can run a chunk of a job that has returned (or read one job's function with another's
/// context: a worker that finished the last chunk of one job once went on to claim a chunk of the next before its
/// fields were all written, and crashed in a returned job's context).
typedef struct {
    void (*fn)(void *, int);
    void *context;
    int chunks;
    _Atomic int next_chunk, remaining;
} job;
static _Atomic(job *) current_job;
static _Atomic int busy;
static _Thread_local int inside_job;

static void run_chunks(job *j) {
    int chunk;
    while ((chunk = atomic_fetch_add(&j->next_chunk, 1)) < j->chunks) {
        j->fn(j->context, chunk);
        atomic_fetch_sub(&j->remaining, 1);
    }
}

static void *worker(void *unused) {
    (void)unused;
    inside_job = 1;
    unsigned seen = 0;
    for (;;) {
        unsigned current = atomic_load(&generation);
        for (int i = 0; current == seen && i < SPIN_ROUNDS; i++) {
            CPU_RELAX();
            current = atomic_load(&generation);
        }
        if (current == seen) {
            pthread_mutex_lock(&sleep_lock);
            atomic_fetch_add(&sleepers, 1);
            while ((current = atomic_load(&generation)) == seen) pthread_cond_wait(&wake, &sleep_lock);
            atomic_fetch_sub(&sleepers, 1);
            pthread_mutex_unlock(&sleep_lock);
        }
        seen = current;
        atomic_fetch_add(&busy, 1);
        job *j = atomic_load(&current_job);
        if (j) run_chunks(j);
        atomic_fetch_sub(&busy, 1);
    }
    return NULL;
}

static int requested_workers = 1;

/// Starts enough workers for the larger of the first request and the machine's processors.
static void start_workers(void) {
    long processors = sysconf(_SC_NPROCESSORS_ONLN);
    int wanted = requested_workers > processors - 1 ? requested_workers : (int)processors - 1;
    for (int i = 0; i < wanted && i < MAX_WORKERS; i++) {
        pthread_t thread;
        pthread_attr_t attributes;
        pthread_attr_init(&attributes);
        pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&thread, &attributes, worker, NULL) == 0) worker_count++;
        pthread_attr_destroy(&attributes);
    }
}

void cnn_parallel_run(int chunks, int threads, void (*fn)(void *context, int chunk), void *context) {
    if (chunks <= 1 || threads <= 1 || inside_job || pthread_mutex_trylock(&submit_lock) != 0) {
        for (int i = 0; i < chunks; i++) fn(context, i);
        return;
    }
    requested_workers = threads - 1;
    pthread_once(&started, start_workers);
    if (worker_count == 0) {
        pthread_mutex_unlock(&submit_lock);
        for (int i = 0; i < chunks; i++) fn(context, i);
        return;
    }
    job j = {.fn = fn, .context = context, .chunks = chunks};
    atomic_init(&j.next_chunk, 0);
    atomic_init(&j.remaining, chunks);
    atomic_store(&current_job, &j);
    atomic_fetch_add(&generation, 1);
    if (atomic_load(&sleepers) > 0) {
        pthread_mutex_lock(&sleep_lock);
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&sleep_lock);
    }
    inside_job = 1;
    run_chunks(&j);
    inside_job = 0;
    while (atomic_load(&j.remaining) > 0) CPU_RELAX();
    atomic_store(&current_job, NULL);
    while (atomic_load(&busy) > 0) CPU_RELAX();
    pthread_mutex_unlock(&submit_lock);
}
