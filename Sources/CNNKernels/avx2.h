// Kernel-internal: what the AVX2 kernels share. Not part of the public header.
#ifndef CNN_AVX2_H
#define CNN_AVX2_H
#if defined(__x86_64__)
#include <immintrin.h>

/// A ymm mask of lanes 0 ..< count (count clamped to 0...8): AVX2's stand-in for AVX-512's masks at a row's tail.
__attribute__((target("avx2")))
static inline __m256i cnn_lanes_avx2(int count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// The sum of the 8 lanes: halves, then pairs, then the last two.
__attribute__((target("avx2")))
static inline float cnn_sum_avx2(__m256 v) {
    __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
    sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
    return _mm_cvtss_f32(sum);
}
#endif
#endif
