// Single-precision GEMM: packed panels, register-blocked micro-kernels and cache blocking in the style of
// GotoBLAS / BLIS, with the micro-kernel chosen at run time (AVX-512, AVX2+FMA, or portable C) through
// per-function `target` attributes, so the package needs no -march flags.
//
// Legend: M, N, K = sizes of C[M,N] += A[M,K] B[K,N]; MR x NR = the register tile of a micro-kernel;
// MC x KC = the block of A kept in L2; KC x NR = the sliver of B kept in L1; NC = the columns of B per pass.
#include "cnn_kernels.h"
#include "buffers.h"
#include "avx2.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CNN_X86 1
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#define CNN_ARM64 1
#endif

enum { KC = 256, MC = 192, NC = 3072, MR_MAX = 12, NR_MAX = 32 };

/// c[MR, NR] (row stride ldc) = alpha * a[K, MR]^T b[K, NR] (+ c when `accumulate`); a and b are packed panels.
typedef void (*micro_kernel)(int k, const float *a, const float *b, float *c, int ldc, float alpha, int accumulate);

typedef struct {
    int mr, nr;
    micro_kernel kernel;
    int avx512;  // the AVX-512 packers and the dot-product path may serve it
    int avx2;    // the AVX2 packers may serve it (MR <= 8, NR a multiple of 8)
} gemm_arch;

// ---- Micro-kernels ---------------------------------------------------------------------------------

// Portable: 4 x 16, written so that any compiler vectorises the inner loop.
static void kernel_portable_4x16(int k, const float *a, const float *b, float *c, int ldc, float alpha, int accumulate) {
    float acc[4][16] = {{0}};
    for (int p = 0; p < k; p++, a += 4, b += 16)
        for (int r = 0; r < 4; r++)
            for (int j = 0; j < 16; j++) acc[r][j] += a[r] * b[j];
    for (int r = 0; r < 4; r++)
        for (int j = 0; j < 16; j++) c[r * ldc + j] = alpha * acc[r][j] + (accumulate ? c[r * ldc + j] : 0);
}

#ifdef CNN_X86
// AVX2 + FMA: 6 x 16, twelve ymm accumulators. B is read at row stride ldb: 16 from a packed sliver, or where it
// lies for products of few rows against a wide B (sgemm_unpacked_b_avx2), which also prefetch each row's line two
// slivers ahead. A is read at a + r * a_row + p * a_step: 1 and 6 from a packed sliver, or where it lies for products
// of many rows against few columns (sgemm_unpacked_a_avx2). The body takes the tile's height (1 to 6, a constant in
// each kernel) so that a product's last, partial sliver of rows can be written straight into C.
__attribute__((target("avx2,fma")))
__attribute__((always_inline)) static inline void kernel_avx2_rx16_body(const int rows, int k, const float *a, size_t a_row,
                                                                         size_t a_step, const float *b, size_t ldb, int prefetch,
                                                                         float *c, int ldc, float alpha, int accumulate) {
    __m256 acc[6][2];
#pragma clang loop unroll(full)
    for (int r = 0; r < rows; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int p = 0; p < k; p++, a += a_step, b += ldb) {
        if (prefetch) _mm_prefetch((const char *)(b + 32), _MM_HINT_T0);
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma clang loop unroll(full)
        for (int r = 0; r < rows; r++) {
            __m256 ar = _mm256_broadcast_ss(a + r * a_row);
            acc[r][0] = _mm256_fmadd_ps(ar, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(ar, b1, acc[r][1]);
        }
    }
    __m256 va = _mm256_set1_ps(alpha);
#pragma clang loop unroll(full)
    for (int r = 0; r < rows; r++) {
        float *cr = c + (size_t)r * ldc;
        __m256 c0 = accumulate ? _mm256_loadu_ps(cr) : _mm256_setzero_ps();
        __m256 c1 = accumulate ? _mm256_loadu_ps(cr + 8) : _mm256_setzero_ps();
        _mm256_storeu_ps(cr, _mm256_fmadd_ps(va, acc[r][0], c0));
        _mm256_storeu_ps(cr + 8, _mm256_fmadd_ps(va, acc[r][1], c1));
    }
}

__attribute__((target("avx2,fma")))
static void kernel_avx2_6x16(int k, const float *a, const float *b, float *c, int ldc, float alpha, int accumulate) {
    kernel_avx2_rx16_body(6, k, a, 1, 6, b, 16, 0, c, ldc, alpha, accumulate);
}

__attribute__((target("avx2,fma")))
static void kernel_avx2_6x16_strided(int k, const float *a, const float *b, size_t ldb, float *c, int ldc, float alpha,
                                     int accumulate) {
    kernel_avx2_rx16_body(6, k, a, 1, 6, b, ldb, 1, c, ldc, alpha, accumulate);
}

/// The same against a packed B sliver, with A read where it lies: row r of the tile at a + r * a_row, step p at
/// a + p * a_step (op(A) = A: a_row = lda, a_step = 1; op(A) = A^T: a_row = 1, a_step = lda).
__attribute__((target("avx2,fma")))
static void kernel_avx2_6x16_in_place_a(int k, const float *a, size_t a_row, size_t a_step, const float *b, float *c,
                                        int ldc, float alpha, int accumulate) {
    if (a_row == 1) kernel_avx2_rx16_body(6, k, a, 1, a_step, b, 16, 0, c, ldc, alpha, accumulate);
    else kernel_avx2_rx16_body(6, k, a, a_row, 1, b, 16, 0, c, ldc, alpha, accumulate);
}

/// Fewer than 6 rows (a packed A sliver's first `R`) against 16 columns of B at row stride ldb, stored straight into
/// C: the last sliver of a product whose rows are not a multiple of 6 (16 = 6 + 6 + 4), which otherwise computes 6
/// rows into a scratch tile and copies the part that exists.
#define AVX2_ROWS_KERNEL(R)                                                                                        \
    __attribute__((target("avx2,fma")))                                                                            \
    static void kernel_avx2_##R##x16(int k, const float *a, const float *b, size_t ldb, int prefetch, float *c,    \
                                     int ldc, float alpha, int accumulate) {                                       \
        if (prefetch) kernel_avx2_rx16_body(R, k, a, 1, 6, b, ldb, 1, c, ldc, alpha, accumulate);                  \
        else kernel_avx2_rx16_body(R, k, a, 1, 6, b, ldb, 0, c, ldc, alpha, accumulate);                           \
    }
AVX2_ROWS_KERNEL(1)
AVX2_ROWS_KERNEL(2)
AVX2_ROWS_KERNEL(3)
AVX2_ROWS_KERNEL(4)
AVX2_ROWS_KERNEL(5)
typedef void (*avx2_rows_kernel)(int k, const float *a, const float *b, size_t ldb, int prefetch, float *c, int ldc,
                                 float alpha, int accumulate);
/// Indexed by the number of rows, 1 to 5.
static const avx2_rows_kernel avx2_rows_kernels[6] = {NULL, kernel_avx2_1x16, kernel_avx2_2x16, kernel_avx2_3x16,
                                                      kernel_avx2_4x16, kernel_avx2_5x16};

// AVX-512: MR x 32 with 2 * MR zmm accumulators; two FMAs per broadcast of A. Three heights, so that a GEMM whose
// M is 6 or 16 (LeNet) or 64 (VGG) is not padded to a multiple of 12. And MR x 16, one zmm per row, for products
// of at most 16 columns (VGG16's last Winograd block of a layer, a classifier's 10 classes), which the 32-wide
// tile would pad to twice their width. Every loop over the rows is unrolled, so that the accumulators live in
// registers from start to end (otherwise they are cleared, spilled and stored through the stack, which costs a
// product of small K, such as LeNet's 16 output channels, a sixth of its time).
#define AVX512_KERNEL(MR)                                                                                          \
    __attribute__((target("avx512f,fma")))                                                                         \
    static void kernel_avx512_##MR##x32(int k, const float *a, const float *b, float *c, int ldc, float alpha,     \
                                        int accumulate) {                                                          \
        __m512 acc[MR][2];                                                                                         \
        _Pragma("clang loop unroll(full)")                                                                         \
        for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();                                  \
        for (int p = 0; p < k; p++, a += MR, b += 32) {                                                            \
            __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);                                            \
            _Pragma("clang loop unroll(full)")                                                                     \
            for (int r = 0; r < MR; r++) {                                                                         \
                __m512 ar = _mm512_set1_ps(a[r]);                                                                  \
                acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);                                                    \
                acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);                                                    \
            }                                                                                                      \
        }                                                                                                          \
        __m512 va = _mm512_set1_ps(alpha);                                                                         \
        _Pragma("clang loop unroll(full)")                                                                         \
        for (int r = 0; r < MR; r++) {                                                                             \
            float *cr = c + (size_t)r * ldc;                                                                       \
            __m512 c0 = accumulate ? _mm512_loadu_ps(cr) : _mm512_setzero_ps();                                   \
            __m512 c1 = accumulate ? _mm512_loadu_ps(cr + 16) : _mm512_setzero_ps();                               \
            _mm512_storeu_ps(cr, _mm512_fmadd_ps(va, acc[r][0], c0));                                              \
            _mm512_storeu_ps(cr + 16, _mm512_fmadd_ps(va, acc[r][1], c1));                                         \
        }                                                                                                          \
    }                                                                                                              \
    __attribute__((target("avx512f,fma")))                                                                         \
    static void kernel_avx512_##MR##x16(int k, const float *a, const float *b, float *c, int ldc, float alpha,     \
                                        int accumulate) {                                                          \
        __m512 acc[MR];                                                                                            \
        _Pragma("clang loop unroll(full)")                                                                         \
        for (int r = 0; r < MR; r++) acc[r] = _mm512_setzero_ps();                                                 \
        for (int p = 0; p < k; p++, a += MR, b += 16) {                                                            \
            __m512 b0 = _mm512_load_ps(b);                                                                         \
            _Pragma("clang loop unroll(full)")                                                                     \
            for (int r = 0; r < MR; r++) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[r]), b0, acc[r]);               \
        }                                                                                                          \
        __m512 va = _mm512_set1_ps(alpha);                                                                         \
        _Pragma("clang loop unroll(full)")                                                                         \
        for (int r = 0; r < MR; r++) {                                                                             \
            float *cr = c + (size_t)r * ldc;                                                                       \
            __m512 c0 = accumulate ? _mm512_loadu_ps(cr) : _mm512_setzero_ps();                                   \
            _mm512_storeu_ps(cr, _mm512_fmadd_ps(va, acc[r], c0));                                                 \
        }                                                                                                          \
    }
AVX512_KERNEL(12)
AVX512_KERNEL(8)
AVX512_KERNEL(4)

/// C = alpha A B^T + beta C for few rows of A (a fully connected layer's batch): dot products of rows, four rows of
/// A by four rows of B at a time, without packing. Packing B^T (the layer's weights, VGG16's fc6 holds 103 million
/// of them) would transpose every weight for a handful of rows.
__attribute__((target("avx512f,fma")))
static void sgemm_dots_avx512(int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                              float beta, float *C, int ldc) {
    const __mmask16 tail = (__mmask16)((1u << (K % 16)) - 1);
    const int whole = K / 16 * 16;
    // Four rows of B (read from memory once, then from L2) against every row of A (which stays in L2).
    for (int j0 = 0; j0 < N; j0 += 4) {
        const float *b[4];
        for (int c = 0; c < 4; c++) b[c] = B + (size_t)(j0 + c < N ? j0 + c : N - 1) * ldb;
        for (int i0 = 0; i0 < M; i0 += 4) {
            const float *a[4];
            for (int r = 0; r < 4; r++) a[r] = A + (size_t)(i0 + r < M ? i0 + r : M - 1) * lda;
            __m512 acc[4][4];
            for (int r = 0; r < 4; r++)
                for (int c = 0; c < 4; c++) acc[r][c] = _mm512_setzero_ps();
            for (int p = 0; p < whole; p += 16) {
                __m512 bv[4];
                for (int c = 0; c < 4; c++) bv[c] = _mm512_loadu_ps(b[c] + p);
                for (int r = 0; r < 4; r++) {
                    __m512 av = _mm512_loadu_ps(a[r] + p);
                    for (int c = 0; c < 4; c++) acc[r][c] = _mm512_fmadd_ps(av, bv[c], acc[r][c]);
                }
            }
            if (tail) {
                __m512 bv[4];
                for (int c = 0; c < 4; c++) bv[c] = _mm512_maskz_loadu_ps(tail, b[c] + whole);
                for (int r = 0; r < 4; r++) {
                    __m512 av = _mm512_maskz_loadu_ps(tail, a[r] + whole);
                    for (int c = 0; c < 4; c++) acc[r][c] = _mm512_fmadd_ps(av, bv[c], acc[r][c]);
                }
            }
            for (int r = 0; r < 4 && i0 + r < M; r++)
                for (int c = 0; c < 4 && j0 + c < N; c++) {
                    float *out = C + (size_t)(i0 + r) * ldc + j0 + c;
                    float value = alpha * _mm512_reduce_add_ps(acc[r][c]);
                    *out = beta == 0.0f ? value : value + beta * *out;
                }
        }
    }
}
#endif

#ifdef CNN_X86
/// sgemm_dots_avx512 on AVX2: two rows of A by four rows of B at a time (8 accumulators, 4 vectors of B and one of A
/// within the 16 ymm registers), 8 lanes, the tail of K masked. The lanes are summed every KC values of K, as the
/// packed path's blocks are: with 8 lanes only, one running sum per lane over all of a long K (Winograd's weight
/// gradient sends 4,096 tiles) lost enough to miss KernelTests' bound.
__attribute__((target("avx2,fma")))
static void sgemm_dots_avx2(int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                            float beta, float *C, int ldc) {
    for (int j0 = 0; j0 < N; j0 += 4) {
        const float *b[4];
        for (int c = 0; c < 4; c++) b[c] = B + (size_t)(j0 + c < N ? j0 + c : N - 1) * ldb;
        for (int i0 = 0; i0 < M; i0 += 2) {
            const float *a[2];
            for (int r = 0; r < 2; r++) a[r] = A + (size_t)(i0 + r < M ? i0 + r : M - 1) * lda;
            float total[2][4] = {{0}};
            for (int p0 = 0; p0 < K; p0 += KC) {
                const int end = K - p0 < KC ? K : p0 + KC, whole = p0 + (end - p0) / 8 * 8;
                __m256 acc[2][4];
                for (int r = 0; r < 2; r++)
                    for (int c = 0; c < 4; c++) acc[r][c] = _mm256_setzero_ps();
                for (int p = p0; p < whole; p += 8) {
                    __m256 bv[4];
                    for (int c = 0; c < 4; c++) bv[c] = _mm256_loadu_ps(b[c] + p);
                    for (int r = 0; r < 2; r++) {
                        __m256 av = _mm256_loadu_ps(a[r] + p);
                        for (int c = 0; c < 4; c++) acc[r][c] = _mm256_fmadd_ps(av, bv[c], acc[r][c]);
                    }
                }
                if (whole < end) {
                    const __m256i tail = cnn_lanes_avx2(end - whole);
                    __m256 bv[4];
                    for (int c = 0; c < 4; c++) bv[c] = _mm256_maskload_ps(b[c] + whole, tail);
                    for (int r = 0; r < 2; r++) {
                        __m256 av = _mm256_maskload_ps(a[r] + whole, tail);
                        for (int c = 0; c < 4; c++) acc[r][c] = _mm256_fmadd_ps(av, bv[c], acc[r][c]);
                    }
                }
                for (int r = 0; r < 2; r++)
                    for (int c = 0; c < 4; c++) {
                        total[r][c] += cnn_sum_avx2(acc[r][c]);
                    }
            }
            for (int r = 0; r < 2 && i0 + r < M; r++)
                for (int c = 0; c < 4 && j0 + c < N; c++) {
                    float *out = C + (size_t)(i0 + r) * ldc + j0 + c;
                    const float value = alpha * total[r][c];
                    *out = beta == 0.0f ? value : value + beta * *out;
                }
        }
    }
}
#endif

#ifdef CNN_ARM64
/// NEON: 8 x 12 with 24 of the 32 quad registers as accumulators; each value of A multiplies three vectors of B by
/// lane (fmla by element), so A is read as two vectors per step rather than broadcast value by value.
static void kernel_neon_8x12(int k, const float *a, const float *b, float *c, int ldc, float alpha, int accumulate) {
    float32x4_t acc[8][3];
#pragma clang loop unroll(full)
    for (int r = 0; r < 8; r++) acc[r][0] = acc[r][1] = acc[r][2] = vdupq_n_f32(0);
    for (int p = 0; p < k; p++, a += 8, b += 12) {
        const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
        const float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
#define NEON_ROW(r, av, lane)                                                                                          \
    acc[r][0] = vfmaq_laneq_f32(acc[r][0], b0, av, lane);                                                              \
    acc[r][1] = vfmaq_laneq_f32(acc[r][1], b1, av, lane);                                                              \
    acc[r][2] = vfmaq_laneq_f32(acc[r][2], b2, av, lane);
        NEON_ROW(0, a0, 0) NEON_ROW(1, a0, 1) NEON_ROW(2, a0, 2) NEON_ROW(3, a0, 3)
        NEON_ROW(4, a1, 0) NEON_ROW(5, a1, 1) NEON_ROW(6, a1, 2) NEON_ROW(7, a1, 3)
#undef NEON_ROW
    }
#pragma clang loop unroll(full)
    for (int r = 0; r < 8; r++) {
        float *cr = c + (size_t)r * ldc;
#pragma clang loop unroll(full)
        for (int v = 0; v < 3; v++) {
            float32x4_t scaled = vmulq_n_f32(acc[r][v], alpha);
            vst1q_f32(cr + 4 * v, accumulate ? vaddq_f32(scaled, vld1q_f32(cr + 4 * v)) : scaled);
        }
    }
}
#endif

// ---- Dispatch ----------------------------------------------------------------------------------------

static const gemm_arch arch_portable = {4, 16, kernel_portable_4x16, 0};
#ifdef CNN_ARM64
static const gemm_arch arch_neon = {8, 12, kernel_neon_8x12, 0};
#endif
#ifdef CNN_X86
static const gemm_arch arch_avx2 = {6, 16, kernel_avx2_6x16, 0, 1};
static const gemm_arch arch_avx512[] = {{12, 32, kernel_avx512_12x32, 1}, {8, 32, kernel_avx512_8x32, 1}, {4, 32, kernel_avx512_4x32, 1}};
/// The same heights 16 wide, for N <= 16 (same MR for the same M, so A packed for one serves the other).
static const gemm_arch arch_avx512_narrow[] = {{12, 16, kernel_avx512_12x16, 1}, {8, 16, kernel_avx512_8x16, 1}, {4, 16, kernel_avx512_4x16, 1}};
/// Relative throughput of the three heights (fewer accumulators hide less latency and load more per FMA).
static const float avx512_efficiency[] = {1.0f, 0.95f, 0.8f};
#endif

static _Atomic int active_isa = -1;

cnn_isa cnn_isa_detected(void) {
#ifdef CNN_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return CNN_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CNN_ISA_AVX2;
#endif
#ifdef CNN_ARM64
    return CNN_ISA_NEON;
#endif
    return CNN_ISA_PORTABLE;
}

cnn_isa cnn_isa_active(void) {
    if (active_isa < 0) {
        // CNN_ISA=avx2 (or portable, avx512, neon) runs a narrower path on a wider machine; never a wider one.
        cnn_isa isa = cnn_isa_detected();
        const char *forced = getenv("CNN_ISA");
        if (forced && strcmp(forced, "portable") == 0) isa = CNN_ISA_PORTABLE;
        else if (forced && strcmp(forced, "avx2") == 0 && isa >= CNN_ISA_AVX2) isa = CNN_ISA_AVX2;
        active_isa = (int)isa;
    }
    return (cnn_isa)active_isa;
}

cnn_isa cnn_isa_select(cnn_isa isa) {
    cnn_isa best = cnn_isa_detected();
    active_isa = (int)(isa < best ? isa : best);
    return (cnn_isa)active_isa;
}

const char *cnn_isa_name(cnn_isa isa) {
    switch (isa) {
    case CNN_ISA_AVX512: return "avx512";
    case CNN_ISA_AVX2: return "avx2";
    case CNN_ISA_NEON: return "neon";
    default: return "portable";
    }
}

/// The micro-kernel for a GEMM with M rows and N columns: on AVX-512, the height that pads M least for its speed,
/// 16 wide when N is at most 16.
static const gemm_arch *arch_for(cnn_isa isa, int M, int N) {
#ifdef CNN_X86
    switch (isa) {
    case CNN_ISA_AVX512: {
        int best = 0;
        float best_cost = 0;
        for (int i = 0; i < 3; i++) {
            int mr = arch_avx512[i].mr;
            float cost = (float)((M + mr - 1) / mr * mr) / avx512_efficiency[i];
            if (i == 0 || cost < best_cost) { best = i; best_cost = cost; }
        }
        return N <= 16 ? &arch_avx512_narrow[best] : &arch_avx512[best];
    }
    case CNN_ISA_AVX2: return &arch_avx2;
    default: break;
    }
#endif
#ifdef CNN_ARM64
    if (isa == CNN_ISA_NEON) return &arch_neon;
#endif
    (void)isa;
    (void)M;
    (void)N;
    return &arch_portable;
}

static const gemm_arch *current_arch(int M, int N) { return arch_for(cnn_isa_active(), M, N); }

/// A width that takes the full-width micro-kernels: for what does not depend on N (how A is packed, the tile width
/// on which callers split the columns). The 16-wide kernels have the same MR, so A packed for one serves the other.
enum { ANY_N = 1 << 20 };

int cnn_sgemm_mr(void) { return 24; }
int cnn_sgemm_mr_for(int M) { return current_arch(M, ANY_N)->mr; }
int cnn_sgemm_nr(void) { return current_arch(ANY_N, ANY_N)->nr; }

// ---- Packing -----------------------------------------------------------------------------------------

/// Per-thread packing buffers, grown on demand and kept: after the first call GEMM allocates nothing.
static _Thread_local float *packed_a, *packed_b;
static _Thread_local size_t packed_a_capacity, packed_b_capacity;

float *cnn_reserve(float **buffer, size_t *capacity, size_t count) {
    if (count > *capacity) {
        free(*buffer);
        void *memory = NULL;
        if (posix_memalign(&memory, 64, count * sizeof(float)) != 0) abort();
        *buffer = memory;
        *capacity = count;
    }
    return *buffer;
}

/// op(A)[i0 : i0+mc, p0 : p0+kc] into slivers of MR rows: dst[sliver][p][r], zero-padded to whole slivers.
/// Each source row is read sequentially (rows of A, or of A^T when trans), whatever the layout.
static void pack_a(int trans, const float *A, int lda, int i0, int p0, int mc, int kc, int mr, float *dst) {
    for (int ir = 0; ir < mc; ir += mr, dst += (size_t)mr * kc) {
        int rows = mc - ir < mr ? mc - ir : mr;
        if (!trans) {
            for (int r = 0; r < rows; r++) {
                const float *src = A + (size_t)(i0 + ir + r) * lda + p0;
                for (int p = 0; p < kc; p++) dst[(size_t)p * mr + r] = src[p];
            }
            for (int r = rows; r < mr; r++)
                for (int p = 0; p < kc; p++) dst[(size_t)p * mr + r] = 0;
        } else {
            for (int p = 0; p < kc; p++) {
                const float *src = A + (size_t)(p0 + p) * lda + (i0 + ir);
                float *d = dst + (size_t)p * mr;
                int r = 0;
                for (; r < rows; r++) d[r] = src[r];
                for (; r < mr; r++) d[r] = 0;
            }
        }
    }
}

/// op(B)[p0 : p0+kc, j0 : j0+nc] into slivers of NR columns: dst[sliver][p][j], zero-padded.
/// Each source row is read sequentially (rows of B, or of B^T when trans).
static void pack_b(int trans, const float *B, int ldb, int p0, int j0, int kc, int nc, int nr, float *dst) {
    if (!trans) {
        // Row by row of B, each read from start to end across all slivers: one sequential stream for the prefetchers.
        for (int p = 0; p < kc; p++) {
            const float *src = B + (size_t)(p0 + p) * ldb + j0;
            float *d = dst + (size_t)p * nr;
            for (int jr = 0; jr < nc; jr += nr, d += (size_t)nr * kc, src += nr) {
                int cols = nc - jr < nr ? nc - jr : nr, j = 0;
                for (; j < cols; j++) d[j] = src[j];
                for (; j < nr; j++) d[j] = 0;
            }
        }
        return;
    }
    for (int jr = 0; jr < nc; jr += nr, dst += (size_t)nr * kc) {
        int cols = nc - jr < nr ? nc - jr : nr;
        {
            for (int j = 0; j < cols; j++) {
                const float *src = B + (size_t)(j0 + jr + j) * ldb + p0;
                for (int p = 0; p < kc; p++) dst[(size_t)p * nr + j] = src[p];
            }
            for (int j = cols; j < nr; j++)
                for (int p = 0; p < kc; p++) dst[(size_t)p * nr + j] = 0;
        }
    }
}

#ifdef CNN_X86
/// r[c] = column c of the 16 x 16 matrix whose row i is r[i]. Pairs of rows interleaved (unpack), then groups of four
/// (shuffle), then the 128-bit lanes of four vectors exchanged (shuffle_f32x4) in two steps.
__attribute__((target("avx512f")))
__attribute__((always_inline)) static inline void transpose16_avx512(__m512 r[16]) {
    __m512 t[16], s[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);      // lane L: M[2i][4L], M[2i+1][4L], M[2i][4L+1], M[2i+1][4L+1]
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);  // the same for columns 4L+2, 4L+3
    }
    for (int i = 0; i < 4; i++) {  // s[4i+q], lane L: column 4L+q of rows 4i..4i+3
        s[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        s[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        s[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        s[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int q = 0; q < 4; q++) {  // column 4L+q gathers lane L of s[q], s[4+q], s[8+q], s[12+q]
        __m512 x0 = _mm512_shuffle_f32x4(s[q], s[4 + q], 0x44), x1 = _mm512_shuffle_f32x4(s[q], s[4 + q], 0xEE);
        __m512 y0 = _mm512_shuffle_f32x4(s[8 + q], s[12 + q], 0x44), y1 = _mm512_shuffle_f32x4(s[8 + q], s[12 + q], 0xEE);
        r[q] = _mm512_shuffle_f32x4(x0, y0, 0x88);
        r[4 + q] = _mm512_shuffle_f32x4(x0, y0, 0xDD);
        r[8 + q] = _mm512_shuffle_f32x4(x1, y1, 0x88);
        r[12 + q] = _mm512_shuffle_f32x4(x1, y1, 0xDD);
    }
}

/// The first `count` of 16 lanes (all 16 for 16 or more).
static inline __mmask16 first_lanes(int count) { return count >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1); }

/// r[q] = column q of the block src[0 : rows, 0 : width] (row stride ld), zeros past `rows` and `width` (both <= 16).
__attribute__((target("avx512f")))
__attribute__((always_inline)) static inline void load_transposed_avx512(const float *src, size_t ld, int rows, int width, __m512 r[16]) {
    const __mmask16 m = first_lanes(width);
    for (int i = 0; i < 16; i++) r[i] = i < rows ? _mm512_maskz_loadu_ps(m, src + i * ld) : _mm512_setzero_ps();
    transpose16_avx512(r);
}

/// Both AVX-512 packers: column p of src[0 : rows, 0 : kc] (row stride ld, rows <= 16) stored at dst + p * stride, in
/// the lanes of `lanes`, zeros past `rows`; 16 x 16 blocks transposed in registers, where the portable loops write
/// every value to its own place one at a time.
__attribute__((target("avx512f")))
__attribute__((always_inline)) static inline void pack_transposed_avx512(const float *src, size_t ld, int rows, int kc, float *dst,
                                                                          size_t stride, __mmask16 lanes) {
    for (int pb = 0; pb < kc; pb += 16) {
        const int width = kc - pb < 16 ? kc - pb : 16;
        __m512 r[16];
        load_transposed_avx512(src + pb, ld, rows, width, r);
        // Unrolled with constant indices, so that r stays in registers (a loop to `width` spills it).
#pragma clang loop unroll(full)
        for (int q = 0; q < 16; q++)
            if (q < width) _mm512_mask_storeu_ps(dst + (size_t)(pb + q) * stride, lanes, r[q]);
    }
}

/// pack_b for B^T and slivers of 32 or 16 columns (the AVX-512 kernels), 16 rows of B (columns of the sliver) at a time.
__attribute__((target("avx512f")))
static void pack_b_trans_avx512(const float *B, int ldb, int p0, int j0, int kc, int nc, int nr, float *dst) {
    for (int jr = 0; jr < nc; jr += nr, dst += (size_t)nr * kc) {
        const int cols = nc - jr < nr ? nc - jr : nr;
        for (int half = 0; half < nr / 16; half++)  // rows of B past `cols` are packed as zeros
            pack_transposed_avx512(B + (size_t)(j0 + jr + 16 * half) * ldb + p0, (size_t)ldb, cols - 16 * half, kc,
                                   dst + 16 * half, (size_t)nr, 0xFFFF);
    }
}

/// pack_a for A not transposed, on AVX-512: a sliver's MR rows at a time, each column stored as MR contiguous values.
__attribute__((target("avx512f")))
static void pack_a_avx512(const float *A, int lda, int i0, int p0, int mc, int kc, int mr, float *dst) {
    for (int ir = 0; ir < mc; ir += mr, dst += (size_t)mr * kc) {
        const int rows = mc - ir < mr ? mc - ir : mr;
        pack_transposed_avx512(A + (size_t)(i0 + ir) * lda + p0, (size_t)lda, rows, kc, dst, (size_t)mr, first_lanes(mr));
    }
}

/// r[c] = column c of the 8 x 8 matrix whose row i is r[i]: pairs of rows interleaved (unpack), then groups of four
/// (shuffle), then the 128-bit halves exchanged (permute2f128).
__attribute__((target("avx2")))
__attribute__((always_inline)) static inline void transpose8_avx2(__m256 r[8]) {
    __m256 t[8], s[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);      // half H: M[2i][4H], M[2i+1][4H], M[2i][4H+1], M[2i+1][4H+1]
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);  // the same for columns 4H+2, 4H+3
    }
    for (int i = 0; i < 2; i++) {  // s[4i+q], half H: column 4H+q of rows 4i..4i+3
        s[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        s[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        s[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        s[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int q = 0; q < 4; q++) {  // column q: the low halves of s[q] and s[4+q]; column 4+q: their high halves
        r[q] = _mm256_permute2f128_ps(s[q], s[4 + q], 0x20);
        r[4 + q] = _mm256_permute2f128_ps(s[q], s[4 + q], 0x31);
    }
}

/// The AVX2 twin of pack_transposed_avx512: column p of src[0 : rows, 0 : kc] (row stride ld, rows <= 8) stored as
/// its first `lanes` (<= 8) values at dst + p * stride, zeros past `rows`; 8 x 8 blocks transposed in registers.
__attribute__((target("avx2")))
__attribute__((always_inline)) static inline void pack_transposed_avx2(const float *src, size_t ld, int rows, int kc, float *dst,
                                                                        size_t stride, int lanes) {
    const __m256i kept = cnn_lanes_avx2(lanes);
    for (int pb = 0; pb < kc; pb += 8) {
        const int width = kc - pb < 8 ? kc - pb : 8;
        const __m256i m = cnn_lanes_avx2(width);
        __m256 r[8];
#pragma clang loop unroll(full)
        for (int i = 0; i < 8; i++)
            r[i] = i >= rows ? _mm256_setzero_ps()
                 : width == 8 ? _mm256_loadu_ps(src + i * ld + pb) : _mm256_maskload_ps(src + i * ld + pb, m);
        transpose8_avx2(r);
        // Unrolled with constant indices, so that r stays in registers.
#pragma clang loop unroll(full)
        for (int q = 0; q < 8; q++)
            if (q < width) {
                if (lanes == 8) _mm256_storeu_ps(dst + (size_t)(pb + q) * stride, r[q]);
                else _mm256_maskstore_ps(dst + (size_t)(pb + q) * stride, kept, r[q]);
            }
    }
}

/// pack_b for B^T on AVX2 (slivers of 16 columns): 8 rows of B (columns of the sliver) at a time.
__attribute__((target("avx2")))
static void pack_b_trans_avx2(const float *B, int ldb, int p0, int j0, int kc, int nc, int nr, float *dst) {
    for (int jr = 0; jr < nc; jr += nr, dst += (size_t)nr * kc) {
        const int cols = nc - jr < nr ? nc - jr : nr;
        for (int part = 0; part < nr / 8; part++)  // rows of B past `cols` are packed as zeros
            pack_transposed_avx2(B + (size_t)(j0 + jr + 8 * part) * ldb + p0, (size_t)ldb, cols - 8 * part, kc,
                                 dst + 8 * part, (size_t)nr, 8);
    }
}

/// pack_a for A not transposed, on AVX2: a sliver's MR (<= 8) rows at a time, each column stored as MR values.
__attribute__((target("avx2")))
static void pack_a_avx2(const float *A, int lda, int i0, int p0, int mc, int kc, int mr, float *dst) {
    for (int ir = 0; ir < mc; ir += mr, dst += (size_t)mr * kc) {
        const int rows = mc - ir < mr ? mc - ir : mr;
        pack_transposed_avx2(A + (size_t)(i0 + ir) * lda + p0, (size_t)lda, rows, kc, dst, (size_t)mr, mr);
    }
}

/// The rows x cols that exist of a tile computed into `edge` (row stride nr, 16 or 32), added to C or stored: 16 lanes
/// at a time, masked at the last columns. Every tile of a GEMM with fewer rows than the micro-kernel (LeNet's and
/// the classifiers' 10 classes) goes through here.
__attribute__((target("avx512f")))
static void store_edge_avx512(const float *edge, int nr, float *c, int ldc, int rows, int cols, int accumulate) {
    for (int r = 0; r < rows; r++) {
        float *cr = c + (size_t)r * ldc;
        for (int j = 0; j < cols; j += 16) {
            const __mmask16 m = first_lanes(cols - j);
            __m512 v = _mm512_load_ps(edge + r * nr + j);
            if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, cr + j));
            _mm512_mask_storeu_ps(cr + j, m, v);
        }
    }
}
#endif

// ---- Driver ------------------------------------------------------------------------------------------

/// The part of a scratch tile (row stride nr) that exists in C: rows x cols, added to C when `accumulate`.
static void store_edge(const float *edge, int nr, float *c, int ldc, int rows, int cols, int accumulate) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++)
            c[(size_t)r * ldc + j] = edge[r * nr + j] + (accumulate ? c[(size_t)r * ldc + j] : 0);
}

static void scale_c(int M, int N, float beta, float *C, int ldc) {
    if (beta == 1.0f) return;
    for (int i = 0; i < M; i++) {
        float *row = C + (size_t)i * ldc;
        if (beta == 0.0f) memset(row, 0, (size_t)N * sizeof(float));
        else for (int j = 0; j < N; j++) row[j] *= beta;
    }
}

static void sgemm(const gemm_arch *arch, int trans_a, int trans_b, int M, int N, int K, float alpha,
                  const float *A, int lda, const float *packed, const float *B, int ldb, float beta, float *C, int ldc);

void cnn_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    sgemm(current_arch(M, N), trans_a, trans_b, M, N, K, alpha, A, lda, NULL, B, ldb, beta, C, ldc);
}

/// The rows of A padded to whole slivers of the micro-kernel that serves M rows.
static size_t padded_rows(const gemm_arch *arch, int M) { return (size_t)(M + arch->mr - 1) / arch->mr * arch->mr; }

size_t cnn_sgemm_packed_a_size(int M, int K) {
    return M <= 0 || K <= 0 ? 0 : padded_rows(current_arch(M, ANY_N), M) * (size_t)K;
}

void cnn_sgemm_pack_a(int trans_a, int M, int K, const float *A, int lda, float *packed) {
    // Block by block of KC columns, all rows at once: the same slivers, in the same order, as the driver packs
    // them for each block of MC rows (MC is a multiple of every MR).
    const gemm_arch *arch = current_arch(M, ANY_N);
    const size_t rows = padded_rows(arch, M);
    for (int pc = 0; pc < K; pc += KC) {
        int kc = K - pc < KC ? K - pc : KC;
        pack_a(trans_a, A, lda, 0, pc, M, kc, arch->mr, packed + rows * pc);
    }
}

void cnn_sgemm_packed(int M, int N, int K, float alpha, const float *packed_a, int trans_b, const float *B, int ldb,
                      float beta, float *C, int ldc) {
    sgemm(current_arch(M, N), 0, trans_b, M, N, K, alpha, NULL, 0, packed_a, B, ldb, beta, C, ldc);
}

void cnn_sgemm_isa(cnn_isa isa, int trans_a, int trans_b, int M, int N, int K, float alpha,
                   const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    cnn_isa best = cnn_isa_detected();
    sgemm(arch_for(isa < best ? isa : best, M, N), trans_a, trans_b, M, N, K, alpha, A, lda, NULL, B, ldb, beta, C, ldc);
}

#ifdef CNN_X86
/// At most this many rows of A (six slivers of the AVX2 kernel) read B where it lies rather than packed (a weight
/// gradient over a batch of 16, TN 10 x 4096 x 16: 31.5 -> 36 GFLOP/s on a Zen 2, 1 thread).
enum { UNPACKED_B_ROWS = 36 };
/// Below this many rows of B (a classifier's 10 classes: VGG16's last input gradient, NN 16 x 4096 x 10), each 16-column
/// sliver of B is copied into L1 before the slivers of A meet it: read in place, its rows 16 KB apart share one L1
/// set with C's, and packing all of B first sent it through L2 (Zen 2, 1 thread: 32.4 GFLOP/s packed, 25 in place,
/// 47 copied sliver by sliver, with the last 4 rows written straight into C).
enum { UNPACKED_B_COPIED_DEPTH = 16 };
/// Below this many rows of B read in place, a last, partial sliver of A still goes through a scratch tile: its
/// second pass over B's lines was slower straight into C (TN 10 x 4096 x 16: 44.7 -> 40.6 GFLOP/s), while at the
/// depths measured above it, 84 rows and more, it was faster (NN 32 x 120 x 84: 60.4 -> 61.8, 16 x 25088 x 4096:
/// 46 -> 51). Written straight into C, the tile is rounded once (alpha acc + c fused), through the scratch tile twice:
/// the same for alpha = 1, as every caller passes.
enum { UNPACKED_B_DIRECT_EDGE_DEPTH = 64 };
/// Above this many rows (more than four slivers of A meet each sliver of B), and B's rows at least 4 KB apart, each
/// sliver of B is first copied into L1: rows as far apart as a classifier's 4096 inputs (16 KB) put a sliver's K
/// lines into one L1 set, so every sliver of A after the first would read them from L2 or beyond again. On a Zen 2, 1 thread: NN 32 x 4096 x
/// 4096 41.5 -> 47.8 GFLOP/s, 32 x 6400 x 4096 57 -> 62; at 16 and 24 rows the copy cost more than it saved.
enum { UNPACKED_B_COPIED_ROWS = 24 };

/// C (beta already applied) += alpha op(A) B for few rows of A against a wide B, on AVX2: a classifier's input
/// gradient (16 or 32 rows of dY against 4096 x 25088 weights) would copy all of B into slivers that only a handful
/// of slivers of A read. Here whole 16-column slivers are read in place (the first sliver of A brings them into L1,
/// the others find them there) or, where that thrashes L1, copied into it one at a time; only the last, partial
/// sliver is packed.
__attribute__((target("avx2,fma")))
static void sgemm_unpacked_b_avx2(const gemm_arch *arch, int trans_a, int M, int N, int K, float alpha, const float *A,
                                  int lda, const float *packed, const float *B, int ldb, float beta, float *C, int ldc) {
    const int mr = arch->mr, nr = arch->nr;
    float *a_buf = packed ? NULL : cnn_reserve(&packed_a, &packed_a_capacity, (size_t)(MC + MR_MAX) * KC);
    float *b_buf = cnn_reserve(&packed_b, &packed_b_capacity, (size_t)NR_MAX * KC);
    float edge[MR_MAX * NR_MAX] __attribute__((aligned(64)));
    for (int pc = 0; pc < K; pc += KC) {
        const int kc = K - pc < KC ? K - pc : KC;
        const int accumulate = beta != 0.0f || pc > 0;
        const float *a_block = packed ? packed + padded_rows(arch, M) * pc : a_buf;
        if (!packed) {
            if (!trans_a) pack_a_avx2(A, lda, 0, pc, M, kc, mr, a_buf);
            else pack_a(trans_a, A, lda, 0, pc, M, kc, mr, a_buf);
        }
        for (int jr = 0; jr < N; jr += nr) {
            const int cols = N - jr < nr ? N - jr : nr;
            const float *b = B + (size_t)pc * ldb + jr;
            const int pack = cols < nr || (M > UNPACKED_B_COPIED_ROWS && ldb >= 1024) || kc < UNPACKED_B_COPIED_DEPTH;
            if (pack && cols == nr) {
                for (int p = 0; p < kc; p++) {
                    const float *src = b + (size_t)p * ldb;
                    _mm_prefetch((const char *)(src + 32), _MM_HINT_T0);
                    _mm256_store_ps(b_buf + p * 16, _mm256_loadu_ps(src));
                    _mm256_store_ps(b_buf + p * 16 + 8, _mm256_loadu_ps(src + 8));
                }
            } else if (pack) pack_b(0, B, ldb, pc, jr, kc, cols, nr, b_buf);
            for (int ir = 0; ir < M; ir += mr) {
                const int rows = M - ir < mr ? M - ir : mr;
                const float *a_sliver = a_block + (size_t)(ir / mr) * mr * kc;
                float *c = C + (size_t)ir * ldc + jr;
                if (rows < mr && cols == nr && (pack || kc >= UNPACKED_B_DIRECT_EDGE_DEPTH)) {
                    if (pack) avx2_rows_kernels[rows](kc, a_sliver, b_buf, 16, 0, c, ldc, alpha, accumulate);
                    else avx2_rows_kernels[rows](kc, a_sliver, b, (size_t)ldb, ir == 0, c, ldc, alpha, accumulate);
                    continue;
                }
                float *target = rows == mr && cols == nr ? c : edge;
                const int ld = target == c ? ldc : nr, into = target == c && accumulate;
                if (!pack) kernel_avx2_6x16_strided(kc, a_sliver, b, (size_t)ldb, target, ld, alpha, into);
                else arch->kernel(kc, a_sliver, b_buf, target, ld, alpha, into);
                if (target == edge) store_edge(edge, nr, c, ldc, rows, cols, accumulate);
            }
        }
    }
}

/// At most this many columns of op(B) let A be read where it lies instead of packed, on AVX2 (all of op(B)'s block of
/// K, 256 KB at most, then stays in L2).
enum { UNPACKED_A_COLUMNS = 256 };

/// C (beta already applied) += alpha op(A) op(B) for at least 48 rows against at most 256 columns, on AVX2: a
/// convolution's weights against one image's Winograd tiles or output positions (VGG16's 512 x 16 x 512), Winograd's
/// weight gradients (NT 64 x 64 x 1808). Packing A there costs as much as the product when each of its slivers meets
/// only one or two slivers of B; here whole 6-row slivers of A are read in place (the last, partial one is packed),
/// op(B) is packed once per block of K, and each sliver of A meets every sliver of B while it is in L1. On a Zen 2,
/// kernel-bench against the packed path, 1 thread: 512 x 16 x 512 29 -> 89 GFLOP/s, 256 x 64 x 256 62 -> 95,
/// NT 64 x 64 x 1808 57 -> 85, 512 x 196 x 4608 78 -> 89; at 512 x 512 x 512 and above it was no faster.
__attribute__((target("avx2,fma")))
static void sgemm_unpacked_a_avx2(const gemm_arch *arch, int trans_a, int trans_b, int M, int N, int K, float alpha,
                                  const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    const int mr = arch->mr, nr = arch->nr;
    float *a_buf = cnn_reserve(&packed_a, &packed_a_capacity, (size_t)MR_MAX * KC);
    float *b_buf = cnn_reserve(&packed_b, &packed_b_capacity, (size_t)(UNPACKED_A_COLUMNS + NR_MAX) * KC);
    float edge[MR_MAX * NR_MAX] __attribute__((aligned(64)));
    const size_t a_row = trans_a ? 1 : (size_t)lda, a_step = trans_a ? (size_t)lda : 1;
    for (int pc = 0; pc < K; pc += KC) {
        const int kc = K - pc < KC ? K - pc : KC;
        const int accumulate = beta != 0.0f || pc > 0;
        if (trans_b) pack_b_trans_avx2(B, ldb, pc, 0, kc, N, nr, b_buf);
        else pack_b(0, B, ldb, pc, 0, kc, N, nr, b_buf);
        for (int ir = 0; ir < M; ir += mr) {
            const int rows = M - ir < mr ? M - ir : mr;
            if (rows < mr) pack_a(trans_a, A, lda, ir, pc, rows, kc, mr, a_buf);
            const float *a = trans_a ? A + (size_t)pc * lda + ir : A + (size_t)ir * lda + pc;
            for (int jr = 0; jr < N; jr += nr) {
                const int cols = N - jr < nr ? N - jr : nr;
                const float *b_sliver = b_buf + (size_t)(jr / nr) * nr * kc;
                float *c = C + (size_t)ir * ldc + jr;
                float *target = rows == mr && cols == nr ? c : edge;
                const int ld = target == c ? ldc : nr, into = target == c && accumulate;
                if (rows == mr) kernel_avx2_6x16_in_place_a(kc, a, a_row, a_step, b_sliver, target, ld, alpha, into);
                else arch->kernel(kc, a_buf, b_sliver, target, ld, alpha, into);
                if (target == edge) store_edge(edge, nr, c, ldc, rows, cols, accumulate);
            }
        }
    }
}
#endif

/// The driver. With `packed` (from cnn_sgemm_pack_a for this arch), A is not read and not packed again.
static void sgemm(const gemm_arch *arch, int trans_a, int trans_b, int M, int N, int K, float alpha,
                  const float *A, int lda, const float *packed, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) { scale_c(M, N, beta, C, ldc); return; }
#ifdef CNN_X86
    // A few long rows against B^T (a fully connected layer's forward pass at a small batch): dot products.
    if (arch->avx512) {
        if (!packed && !trans_a && trans_b && M <= 64 && K >= 256) {
            sgemm_dots_avx512(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
            return;
        }
    }
    // On AVX2 only for fewer than 16 columns (a classifier's 10 classes), where it was measured: Winograd's weight
    // gradients (16 or more channels) keep the packed path.
    if (arch->avx2 && !packed && !trans_a && trans_b && M <= 64 && K >= 256 && N < 16) {
        sgemm_dots_avx2(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#endif
    // beta == 0: the first k-block stores instead of accumulating, so C is never read (nor cleared first).
    if (beta != 0.0f) scale_c(M, N, beta, C, ldc);
#ifdef CNN_X86
    if (arch->avx2 && !packed && N <= UNPACKED_A_COLUMNS && M >= 8 * arch->mr && K >= 64) {
        sgemm_unpacked_a_avx2(arch, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (arch->avx2 && !trans_b && M <= UNPACKED_B_ROWS && N >= 4 * arch->nr) {
        sgemm_unpacked_b_avx2(arch, trans_a, M, N, K, alpha, A, lda, packed, B, ldb, beta, C, ldc);
        return;
    }
#endif

    const int mr = arch->mr, nr = arch->nr;
    float *a_buf = packed ? NULL : cnn_reserve(&packed_a, &packed_a_capacity, (size_t)(MC + MR_MAX) * KC);
    float *b_buf = cnn_reserve(&packed_b, &packed_b_capacity, (size_t)(NC + NR_MAX) * KC);
    float edge[MR_MAX * NR_MAX] __attribute__((aligned(64)));

    for (int jc = 0; jc < N; jc += NC) {
        int nc = N - jc < NC ? N - jc : NC;
        for (int pc = 0; pc < K; pc += KC) {
            int kc = K - pc < KC ? K - pc : KC;
            const int accumulate = beta != 0.0f || pc > 0;
#ifdef CNN_X86
            if (trans_b && arch->avx512) pack_b_trans_avx512(B, ldb, pc, jc, kc, nc, nr, b_buf);
            else if (trans_b && arch->avx2) pack_b_trans_avx2(B, ldb, pc, jc, kc, nc, nr, b_buf);
            else
#endif
                pack_b(trans_b, B, ldb, pc, jc, kc, nc, nr, b_buf);
            for (int ic = 0; ic < M; ic += MC) {
                int mc = M - ic < MC ? M - ic : MC;
                const float *a_block = packed ? packed + padded_rows(arch, M) * pc + (size_t)ic * kc : a_buf;
                if (!packed) {
#ifdef CNN_X86
                    if (!trans_a && arch->avx512) pack_a_avx512(A, lda, ic, pc, mc, kc, mr, a_buf);
                    else if (!trans_a && arch->avx2) pack_a_avx2(A, lda, ic, pc, mc, kc, mr, a_buf);
                    else
#endif
                        pack_a(trans_a, A, lda, ic, pc, mc, kc, mr, a_buf);
                }
                for (int jr = 0; jr < nc; jr += nr) {
                    int cols = nc - jr < nr ? nc - jr : nr;
                    const float *b_sliver = b_buf + (size_t)(jr / nr) * nr * kc;
                    for (int ir = 0; ir < mc; ir += mr) {
                        int rows = mc - ir < mr ? mc - ir : mr;
                        const float *a_sliver = a_block + (size_t)(ir / mr) * mr * kc;
                        float *c = C + (size_t)(ic + ir) * ldc + (jc + jr);
                        if (rows == mr && cols == nr) {
                            arch->kernel(kc, a_sliver, b_sliver, c, ldc, alpha, accumulate);
                        } else {
                            // A partial tile: compute the whole tile into a scratch tile, then the part that exists.
                            arch->kernel(kc, a_sliver, b_sliver, edge, nr, alpha, 0);
#ifdef CNN_X86
                            if (arch->avx512) store_edge_avx512(edge, nr, c, ldc, rows, cols, accumulate);
                            else
#endif
                                store_edge(edge, nr, c, ldc, rows, cols, accumulate);
                        }
                    }
                }
            }
        }
    }
}

// ---- Trace -------------------------------------------------------------------------------------------

enum { TRACE_CAPACITY = 1024 };
static _Atomic int tracing;
static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;
static cnn_gemm_shape traced[TRACE_CAPACITY];
static int traced_count;

void cnn_gemm_trace_begin(void) {
    pthread_mutex_lock(&trace_lock);
    traced_count = 0;
    tracing = 1;
    pthread_mutex_unlock(&trace_lock);
}

void cnn_gemm_trace(int trans_a, int trans_b, int M, int N, int K, int threads) {
    if (!tracing) return;
    pthread_mutex_lock(&trace_lock);
    int i = 0;
    for (; i < traced_count; i++) {
        const cnn_gemm_shape *s = &traced[i];
        if (s->trans_a == trans_a && s->trans_b == trans_b && s->m == M && s->n == N && s->k == K && s->threads == threads) break;
    }
    if (i < traced_count) traced[i].calls++;
    else if (traced_count < TRACE_CAPACITY) traced[traced_count++] = (cnn_gemm_shape){trans_a, trans_b, M, N, K, threads, 1};
    else traced_count++;  // counted, not stored: the caller learns that its buffer missed some
    pthread_mutex_unlock(&trace_lock);
}

int cnn_gemm_trace_end(cnn_gemm_shape *shapes, int capacity) {
    pthread_mutex_lock(&trace_lock);
    tracing = 0;
    int stored = traced_count < TRACE_CAPACITY ? traced_count : TRACE_CAPACITY;
    for (int i = 0; i < stored && i < capacity; i++) shapes[i] = traced[i];
    int count = traced_count;
    pthread_mutex_unlock(&trace_lock);
    return count;
}

void cnn_sgemm_naive(int trans_a, int trans_b, int M, int N, int K, float alpha,
                     const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double sum = 0;
            for (int p = 0; p < K; p++) {
                double a = trans_a ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p];
                double b = trans_b ? B[(size_t)j * ldb + p] : B[(size_t)p * ldb + j];
                sum += a * b;
            }
            float *c = C + (size_t)i * ldc + j;
            *c = (float)(alpha * sum + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
}
