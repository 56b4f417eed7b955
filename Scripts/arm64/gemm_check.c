// The GEMM on arm64 (the NEON micro-kernel) against the naive product, and A packed once against A packed per call,
// on the awkward shapes of KernelTests: built by check-kernels.sh for aarch64 and run under qemu-aarch64, and natively
// on x86 once per instruction set (CNN_ISA), where it checks the AVX2 and AVX-512 paths the same way.
#include "cnn_kernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float value(int i, int seed) { return (float)(((long)i * 7919 + seed * 104729) % 2001) / 1000.0f - 1.0f; }

int main(void) {
    const int shapes[][3] = {{1, 1, 1},   {3, 5, 7},     {12, 32, 1},  {13, 33, 17}, {6, 784, 25},  {120, 1, 400},
                             {64, 64, 300}, {1, 1000, 257}, {200, 37, 513}, {5, 3100, 9}, {7, 70, 300}, {16, 66, 272},
                             {9, 3, 260},  {200, 16, 40}, {25, 13, 513},
                             {13, 70, 300}, {32, 200, 100},  // few rows against B read in place (AVX2), partial slivers
                             {200, 16, 300}, {97, 29, 600}, {61, 200, 300},  // many rows against few columns, A in place (AVX2)
                             {30, 1030, 40}, {10, 200, 16},  // few rows against B in place: B copied sliver by sliver, a shallow K
                             {16, 200, 10}, {4, 100, 300}, {17, 90, 70}, {11, 64, 600}};  // copied below 16 rows of B; last rows straight into C
    const float factors[][2] = {{1, 0}, {0.5f, 1}, {-1, 0.25f}};
    int failures = 0, checks = 0;
    for (unsigned s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n);
        float *c0 = malloc(sizeof(float) * m * n), *fast = malloc(sizeof(float) * m * n), *slow = malloc(sizeof(float) * m * n);
        for (int i = 0; i < m * k; i++) a[i] = value(i, 1);
        for (int i = 0; i < k * n; i++) b[i] = value(i, 2);
        for (int i = 0; i < m * n; i++) c0[i] = value(i, 3);
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int f = 0; f < 3; f++) {
                    const float alpha = factors[f][0], beta = factors[f][1];
                    memcpy(fast, c0, sizeof(float) * m * n);
                    memcpy(slow, c0, sizeof(float) * m * n);
                    cnn_sgemm(ta, tb, m, n, k, alpha, a, ta ? m : k, b, tb ? k : n, beta, fast, n);
                    cnn_sgemm_naive(ta, tb, m, n, k, alpha, a, ta ? m : k, b, tb ? k : n, beta, slow, n);
                    float error = 0;
                    for (int i = 0; i < m * n; i++) error = fmaxf(error, fabsf(fast[i] - slow[i]) / fmaxf(1, fabsf(slow[i])));
                    checks++;
                    if (!(error < 1e-4f)) {
                        failures++;
                        printf("%dx%dx%d ta=%d tb=%d alpha=%g beta=%g: error %g\n", m, n, k, ta, tb, alpha, beta, error);
                    }
                }
        // A packed once: the same bits as cnn_sgemm.
        float *packed = malloc(sizeof(float) * (cnn_sgemm_packed_a_size(m, k) + 1));
        cnn_sgemm_pack_a(0, m, k, a, k, packed);
        memcpy(fast, c0, sizeof(float) * m * n);
        memcpy(slow, c0, sizeof(float) * m * n);
        cnn_sgemm_packed(m, n, k, 1, packed, 0, b, n, 0.5f, fast, n);
        cnn_sgemm(0, 0, m, n, k, 1, a, k, b, n, 0.5f, slow, n);
        checks++;
        if (memcmp(fast, slow, sizeof(float) * m * n) != 0) {
            failures++;
            printf("%dx%dx%d: packed A differs from cnn_sgemm\n", m, n, k);
        }
        free(a), free(b), free(c0), free(fast), free(slow), free(packed);
    }
    printf("GEMM on %s: %d of %d checks failed\n", cnn_isa_name(cnn_isa_active()), failures, checks);
#if defined(__aarch64__)
    return failures != 0 || cnn_isa_active() != CNN_ISA_NEON;
#else
    return failures != 0;
#endif
}
