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
static _Atomic unsigned generation;  // bumped once per job
static _Atomic int sleepers;
static _Atomic int next_chunk, remaining;
static void (*job_fn)(void *, int);
static void *job_context;
static int job_chunks;
static _Thread_local int inside_job;

static void run_chunks(void) {
    int chunk;
    while ((chunk = atomic_fetch_add(&next_chunk, 1)) < job_chunks) {
        job_fn(job_context, chunk);
        atomic_fetch_sub(&remaining, 1);
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
        run_chunks();
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
    job_fn = fn;
    job_context = context;
    job_chunks = chunks;
    atomic_store(&remaining, chunks);
    atomic_store(&next_chunk, 0);
    atomic_fetch_add(&generation, 1);
    if (atomic_load(&sleepers) > 0) {
        pthread_mutex_lock(&sleep_lock);
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&sleep_lock);
    }
    inside_job = 1;
    run_chunks();
    inside_job = 0;
    while (atomic_load(&remaining) > 0) CPU_RELAX();
    pthread_mutex_unlock(&submit_lock);
}
