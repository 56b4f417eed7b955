// One int8 convolution layer, piece by piece (quantisation, lowering, GEMM), one thread, on the active instruction
// set ($CNN_ISA holds it to avx2 or portable), and the peak of the VNNI instruction alone. Built and run by
// Scripts/int8/layers.sh; the figures of docs/benchmarks.md's "Int8 inference".
//
//     layers C H CO KERNEL     (a stride-1 "same" convolution of C to CO channels on H x H)
#include "cnn_int8.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#if defined(__x86_64__)
/// Sixteen independent chains of vpdpbusd: the instruction's throughput on one core, in GMAC/s.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static double vnni_peak(void) {
    __m512i acc[16];
    for (int i = 0; i < 16; i++) acc[i] = _mm512_set1_epi32(i);
    __m512i b = _mm512_set1_epi32(0x01010101), c = _mm512_set1_epi32(0x02020202);
    const long rounds = 10000000;
    double t = now();
    for (long i = 0; i < rounds; i++) {
        for (int r = 0; r < 16; r++) acc[r] = _mm512_dpbusd_epi32(acc[r], b, c);
        __asm__ volatile("" : "+v"(b));
    }
    t = now() - t;
    int sink = 0;
    for (int i = 0; i < 16; i++) sink += _mm512_reduce_add_epi32(acc[i]);
    if (sink == 42) printf(" ");
    return rounds * 16.0 * 64 / t / 1e9;
}
#endif

int main(int argc, char **argv) {
    if (argc == 2 && argv[1][0] == 'p') {
#if defined(__x86_64__)
        if (__builtin_cpu_supports("avx512vnni")) printf("vpdpbusd alone: %.1f GMAC/s (1 thread)\n", vnni_peak());
#endif
        return 0;
    }
    if (argc != 5) {
        fprintf(stderr, "usage: layers C H CO KERNEL | layers peak\n");
        return 2;
    }
    const int C = atoi(argv[1]), H = atoi(argv[2]), CO = atoi(argv[3]), KS = atoi(argv[4]);
    const int P = KS / 2, W = H, OH = H, OW = W, N = OH * OW, K = C * KS * KS;
    uint8_t *x = malloc((size_t)C * H * W);
    float *xf = malloc(sizeof(float) * C * H * W);
    for (int i = 0; i < C * H * W; i++) xf[i] = rand() / (float)RAND_MAX;
    int8_t *w = malloc((size_t)CO * K);
    for (int i = 0; i < CO * K; i++) w[i] = (int8_t)(rand() % 127 - 63);
    const int ldb = cnn_int8_columns_stride(N);
    uint8_t *columns = aligned_alloc(64, (cnn_int8_columns_size(K, ldb) + 63) / 64 * 64);
    int8_t *packed = aligned_alloc(64, (cnn_int8_packed_weights_size(CO, K) + 63) / 64 * 64);
    int32_t *sums = malloc(sizeof(int32_t) * CO);
    cnn_int8_pack_weights(w, CO, K, K, packed, sums);
    float *scale = malloc(sizeof(float) * CO), *shift = malloc(sizeof(float) * CO);
    for (int i = 0; i < CO; i++) scale[i] = 1e-3f, shift[i] = 0;
    float *y = malloc(sizeof(float) * (size_t)CO * N);
    const int R = 10;
    double t = now();
    for (int r = 0; r < R; r++) cnn_quantize_u8(xf, (size_t)C * H * W, 0.01f, 0, x);
    const double tq = (now() - t) / R;
    t = now();
    for (int r = 0; r < R; r++) cnn_int8_im2col(x, C, H, W, KS, KS, 1, 1, P, P, OH, OW, 0, columns, ldb, 0, 1);
    const double ti = (now() - t) / R;
    t = now();
    for (int r = 0; r < R; r++) cnn_int8_gemm(CO, N, K, packed, columns, ldb, scale, shift, 1, y, N, 1);
    const double tg = (now() - t) / R;
    printf("%s: C %d, %dx%d, CO %d, %dx%d: quantize %.3f ms, lowering %.3f ms, GEMM %.3f ms = %.1f GMAC/s (1 thread)\n",
           cnn_int8_kernel_name(cnn_isa_active()), C, H, H, CO, KS, KS, tq * 1e3, ti * 1e3, tg * 1e3, (double)CO * N * K / tg / 1e9);
    // The full-width lowering of a padded copy (what the layer does for stride 1 on wide enough maps): OH x Wp columns.
    const int Hp = H + 2 * P, Wp = W + 2 * P, NW = OH * Wp, ldw = cnn_int8_columns_stride(NW);
    uint8_t *padded = malloc((size_t)C * Hp * Wp + KS), *wide = aligned_alloc(64, (cnn_int8_columns_size(K, ldw) + 63) / 64 * 64);
    float *yw = malloc(sizeof(float) * (size_t)CO * NW);
    t = now();
    for (int r = 0; r < R; r++) {
        cnn_int8_pad(x, C, H, W, P, P, Hp, Wp, 0, padded);
        cnn_int8_im2col_wide(padded, C, Hp, Wp, KS, KS, OH, wide, ldw, 0, 1);
    }
    const double tw = (now() - t) / R;
    t = now();
    for (int r = 0; r < R; r++) cnn_int8_gemm(CO, NW, K, packed, wide, ldw, scale, shift, 1, yw, NW, 1);
    const double tgw = (now() - t) / R;
    printf("    at full width (%d columns, not %d): padding and lowering %.3f ms, GEMM %.3f ms: %.3f ms against %.3f\n", NW, N,
           tw * 1e3, tgw * 1e3, (tw + tgw) * 1e3, (ti + tg) * 1e3);
    return 0;
}
