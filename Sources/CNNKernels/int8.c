// Int8 inference: quantisation, lowering and the u8 x s8 GEMM of cnn_int8.h. One packing for every instruction
// set; the micro-kernels are AVX-512 VNNI (8 x 32: sixteen zmm accumulators, one vpdpbusd per 64 products), AVX2
// (4 x 16: vpmaddubsw, then vpmaddwd by ones into int32) and portable C, and all give the same integers.
#include "cnn_int8.h"
#include "avx2.h"
#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define CNN_X86 1
#endif

enum { PANEL = 8, BLOCK = 32 };

static int quads(int K) { return (K + 3) / 4; }

// ---- Quantisation ----------------------------------------------------------------------------------------------

static inline uint8_t quantize_one(float x, float scale, int zero_point) {
    // Clamped before rounding, so that a huge value or NaN (fmaxf returns the other operand) cannot overflow.
    float v = fminf(fmaxf(x / scale, -512.0f), 512.0f);
    int q = (int)nearbyintf(v) + zero_point;
    return (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
}

#ifdef CNN_X86
__attribute__((target("avx512f")))
static void quantize_avx512(const float *x, size_t n, float scale, int zero_point, uint8_t *y) {
    const __m512 s = _mm512_set1_ps(scale), lo = _mm512_set1_ps(-512.0f), hi = _mm512_set1_ps(512.0f);
    const __m512i zp = _mm512_set1_epi32(zero_point), zero = _mm512_setzero_si512(), top = _mm512_set1_epi32(255);
    size_t i = 0;
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_div_ps(_mm512_maskz_loadu_ps(m, x + i), s);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);  // NaN: max_ps returns its second operand
        __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(v), zp);  // rounds half to even (MXCSR's default)
        q = _mm512_min_epi32(_mm512_max_epi32(q, zero), top);
        _mm512_mask_cvtepi32_storeu_epi8(y + i, m, q);
    }
}
__attribute__((target("avx2")))
static void quantize_avx2(const float *x, size_t n, float scale, int zero_point, uint8_t *y) {
    const __m256 s = _mm256_set1_ps(scale), lo = _mm256_set1_ps(-512.0f), hi = _mm256_set1_ps(512.0f);
    const __m256i zp = _mm256_set1_epi32(zero_point);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + i), s);
        v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);  // NaN: max_ps returns its second operand
        const __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(v), zp);
        // Saturating packs to 0 ... 65535 and then 0 ... 255, in order.
        const __m128i words = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        _mm_storel_epi64((__m128i *)(y + i), _mm_packus_epi16(words, words));
    }
    for (; i < n; i++) y[i] = quantize_one(x[i], scale, zero_point);
}
#endif


void cnn_quantize_u8(const float *x, size_t n, float scale, int zero_point, uint8_t *y) {
    cnn_quantize_u8_isa(cnn_isa_active(), x, n, scale, zero_point, y);
}

void cnn_quantize_u8_isa(cnn_isa isa, const float *x, size_t n, float scale, int zero_point, uint8_t *y) {
#ifdef CNN_X86
    if (isa > cnn_isa_detected()) isa = cnn_isa_detected();
    if (isa == CNN_ISA_AVX512) return quantize_avx512(x, n, scale, zero_point, y);
    if (isa == CNN_ISA_AVX2) return quantize_avx2(x, n, scale, zero_point, y);
#else
    (void)isa;
#endif
    for (size_t i = 0; i < n; i++) y[i] = quantize_one(x[i], scale, zero_point);
}

void cnn_quantize_weights_s7(const float *x, size_t count, float scale, int8_t *w) {
    for (size_t i = 0; i < count; i++) {
        float v = nearbyintf(fminf(fmaxf(x[i] / scale, -63.0f), 63.0f));
        w[i] = (int8_t)v;
    }
}

// ---- Lowering --------------------------------------------------------------------------------------------------

int cnn_int8_columns_stride(int N) { return (N + BLOCK - 1) / BLOCK * BLOCK; }

size_t cnn_int8_columns_size(int K, int ldb) { return (size_t)quads(K) * (size_t)ldb * 4; }

// One quad of rows (4 of the K), output row oy: column ox gets the four bytes of its rows as one little-endian word.
// src[l] is row l's input row shifted so that src[l][ox * SW] is column ox's byte, or NULL (fill[l] everywhere: a
// padding row, or a row beyond K); [lo[l], hi[l]) are the columns whose bytes lie inside the image.
static void lower_quad_row(const uint8_t *const src[4], const uint8_t fill[4], const int lo[4], const int hi[4], int OW,
                           int SW, uint32_t *out) {
    int inner_lo = 0, inner_hi = OW;
    for (int l = 0; l < 4; l++) {
        if (!src[l]) continue;
        if (lo[l] > inner_lo) inner_lo = lo[l];
        if (hi[l] < inner_hi) inner_hi = hi[l];
    }
    if (inner_lo > inner_hi) inner_lo = inner_hi = 0;
    int ox = 0;
    for (int pass = 0; pass < 2; pass++) {
        const int end = pass == 0 ? inner_lo : OW;
        for (; ox < end; ox++) {
            uint32_t word = 0;
            for (int l = 0; l < 4; l++) {
                const uint8_t v = src[l] && ox >= lo[l] && ox < hi[l] ? src[l][ox * SW] : fill[l];
                word |= (uint32_t)v << (8 * l);
            }
            out[ox] = word;
        }
        if (pass == 1) break;
        // Inside the image for all four rows: no bounds to check.
#ifdef CNN_X86
        if (SW == 1) {
            __m128i f[4];
            for (int l = 0; l < 4; l++) f[l] = _mm_set1_epi8((char)fill[l]);
            for (; ox + 16 <= inner_hi; ox += 16) {
                __m128i r[4];
                for (int l = 0; l < 4; l++) r[l] = src[l] ? _mm_loadu_si128((const __m128i *)(src[l] + ox)) : f[l];
                const __m128i lo01 = _mm_unpacklo_epi8(r[0], r[1]), hi01 = _mm_unpackhi_epi8(r[0], r[1]);
                const __m128i lo23 = _mm_unpacklo_epi8(r[2], r[3]), hi23 = _mm_unpackhi_epi8(r[2], r[3]);
                _mm_storeu_si128((__m128i *)(out + ox), _mm_unpacklo_epi16(lo01, lo23));
                _mm_storeu_si128((__m128i *)(out + ox + 4), _mm_unpackhi_epi16(lo01, lo23));
                _mm_storeu_si128((__m128i *)(out + ox + 8), _mm_unpacklo_epi16(hi01, hi23));
                _mm_storeu_si128((__m128i *)(out + ox + 12), _mm_unpackhi_epi16(hi01, hi23));
            }
        }
#endif
        for (; ox < inner_hi; ox++) {
            uint32_t word = 0;
            for (int l = 0; l < 4; l++) word |= (uint32_t)(src[l] ? src[l][ox * SW] : fill[l]) << (8 * l);
            out[ox] = word;
        }
    }
}

typedef struct {
    const uint8_t *x;
    int C, H, W, KH, KW, SH, SW, PH, PW, OH, OW, ldb, first_column, wide, quads, chunks;
    uint8_t zero_point;
    uint8_t *columns;
} lowering;

static void lower_quads(const lowering *a, int q_begin, int q_end);

static void lower_chunk(void *context, int chunk) {
    const lowering *a = context;
    lower_quads(a, (int)((long)a->quads * chunk / a->chunks), (int)((long)a->quads * (chunk + 1) / a->chunks));
}

/// Lowers quads [0, quads) on up to `threads` threads (contiguous ranges of quads), when there is enough to share.
static void lower(lowering *a, int threads) {
    const long bytes = (long)a->quads * 4 * (a->wide ? a->OH * a->W : a->OH * a->OW);
    a->chunks = threads < a->quads ? threads : a->quads;
    if (a->chunks <= 1 || bytes < (1L << 16)) return lower_quads(a, 0, a->quads);
    cnn_parallel_run(a->chunks, a->chunks, lower_chunk, a);
}

void cnn_int8_im2col(const uint8_t *x, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int OH,
                     int OW, uint8_t zero_point, uint8_t *columns, int ldb, int first_column, int threads) {
    lowering a = {.x = x, .C = C, .H = H, .W = W, .KH = KH, .KW = KW, .SH = SH, .SW = SW, .PH = PH, .PW = PW, .OH = OH,
                  .OW = OW, .ldb = ldb, .first_column = first_column, .wide = 0, .quads = quads(C * KH * KW),
                  .zero_point = zero_point, .columns = columns};
    lower(&a, threads);
}

void cnn_int8_im2col_wide(const uint8_t *x, int C, int Hp, int Wp, int KH, int KW, int OH, uint8_t *columns, int ldb,
                          int first_column, int threads) {
    lowering a = {.x = x, .C = C, .H = Hp, .W = Wp, .KH = KH, .KW = KW, .OH = OH, .ldb = ldb, .first_column = first_column,
                  .wide = 1, .quads = quads(C * KH * KW), .columns = columns};
    lower(&a, threads);
}

static void lower_quads(const lowering *a, int q_begin, int q_end) {
    const uint8_t *x = a->x;
    const int C = a->C, H = a->H, W = a->W, KH = a->KH, KW = a->KW, SH = a->SH, SW = a->SW, PH = a->PH, PW = a->PW;
    const int OH = a->OH, OW = a->OW, ldb = a->ldb, first_column = a->first_column;
    const uint8_t zero_point = a->zero_point;
    uint8_t *columns = a->columns;
    const int K = C * KH * KW;
    // A pointwise kernel (1x1, stride 1, no padding) is the full-width case of an image that needs no padding.
    const int pointwise = KH == 1 && KW == 1 && SH == 1 && SW == 1 && PH == 0 && PW == 0 && OH == H && OW == W;
    if (a->wide || pointwise) {
        // Stride 1 over a padded image at full width: each row of the column matrix is one run of OH * W bytes (for a
        // pointwise kernel, four whole channel planes interleaved).
        const int n = OH * W, all[4] = {0, 0, 0, 0}, none[4] = {n, n, n, n};
        const uint8_t fill[4] = {0, 0, 0, 0};
        for (int q = q_begin; q < q_end; q++) {
            const uint8_t *src[4];
            for (int l = 0; l < 4; l++) {
                const int k = q * 4 + l;
                src[l] = k < K ? x + ((size_t)(k / (KH * KW)) * H + k / KW % KH) * W + k % KW : NULL;
            }
            lower_quad_row(src, fill, all, none, n, 1, (uint32_t *)(columns + ((size_t)q * ldb + first_column) * 4));
        }
        return;
    }
    for (int q = q_begin; q < q_end; q++) {
        int c[4], ky[4], lo[4], hi[4];
        uint8_t fill[4];
        for (int l = 0; l < 4; l++) {
            const int k = q * 4 + l, kx = k % KW;
            c[l] = k / (KH * KW);
            ky[l] = k / KW % KH;
            // Columns ox whose ix = ox * SW - PW + kx lies in [0, W).
            int x0 = PW - kx > 0 ? (PW - kx + SW - 1) / SW : 0;
            int x1 = W - 1 + PW - kx >= 0 ? (W - 1 + PW - kx) / SW + 1 : 0;
            if (x1 > OW) x1 = OW;
            if (x0 > x1) x0 = x1;
            lo[l] = x0;
            hi[l] = x1;
            fill[l] = k < K ? zero_point : 0;  // rows beyond K are zero (their weights are zero too)
        }
        uint32_t *row = (uint32_t *)(columns + ((size_t)q * ldb + first_column) * 4);
        for (int oy = 0; oy < OH; oy++) {
            const uint8_t *src[4];
            for (int l = 0; l < 4; l++) {
                const int k = q * 4 + l, iy = oy * SH - PH + ky[l];
                src[l] = k < K && iy >= 0 && iy < H ? x + ((size_t)c[l] * H + iy) * W - PW + k % KW : NULL;
            }
            lower_quad_row(src, fill, lo, hi, OW, SW, row + (size_t)oy * OW);
        }
    }
}

void cnn_int8_pad(const uint8_t *x, int C, int H, int W, int PH, int PW, int Hp, int Wp, uint8_t zero_point, uint8_t *y) {
    for (int c = 0; c < C; c++) {
        uint8_t *plane = y + (size_t)c * Hp * Wp;
        for (int r = 0; r < Hp; r++) {
            uint8_t *row = plane + (size_t)r * Wp;
            const int iy = r - PH;
            if (iy < 0 || iy >= H) {
                memset(row, zero_point, (size_t)Wp);
                continue;
            }
            const int left = PW < Wp ? PW : Wp, copied = W < Wp - left ? W : Wp - left;
            memset(row, zero_point, (size_t)left);
            memcpy(row + left, x + ((size_t)c * H + iy) * W, (size_t)copied);
            memset(row + left + copied, zero_point, (size_t)(Wp - left - copied));
        }
    }
}

// ---- Weights ---------------------------------------------------------------------------------------------------

size_t cnn_int8_packed_weights_size(int M, int K) {
    return (size_t)((M + PANEL - 1) / PANEL) * quads(K) * PANEL * 4;
}

void cnn_int8_pack_weights(const int8_t *w, int M, int K, int ldw, int8_t *packed, int32_t *row_sums) {
    const int k4 = quads(K);
    memset(packed, 0, cnn_int8_packed_weights_size(M, K));
    for (int m = 0; m < M; m++) {
        int32_t sum = 0;
        int8_t *panel = packed + (size_t)(m / PANEL) * k4 * PANEL * 4 + (m % PANEL) * 4;
        for (int k = 0; k < K; k++) {
            const int8_t v = w[(size_t)m * ldw + k];
            panel[(size_t)(k / 4) * PANEL * 4 + k % 4] = v;
            sum += v;
        }
        row_sums[m] = sum;
    }
}

// ---- Micro-kernels ---------------------------------------------------------------------------------------------
// Each computes rows [0, rows) (at most its height) and columns [0, cols) (at most its width) of one tile: a is the
// panel (rows 8 per quad), b the columns of the tile (stride ldb * 4 bytes per quad). The tile is finished as
// cnn_int8_gemm_isa says.

typedef struct {
    const float *scale, *shift;
    int relu;
    float *C;
    int ldc;
    int32_t *C32;
    int ldc32;
} finish_t;

static inline void finish_one(const finish_t *f, int m, int n, int32_t s) {
    if (f->C32) {
        f->C32[(size_t)m * f->ldc32 + n] = s;
    } else {
        float y = fmaf((float)s, f->scale[m], f->shift[m]);
        f->C[(size_t)m * f->ldc + n] = f->relu && !(y > 0) ? 0 : y;
    }
}

static void tile_portable(int k4, const int8_t *a, const uint8_t *b, int ldb, int m0, int rows, int n0, int cols,
                          const finish_t *f) {
    for (int r = 0; r < rows; r++) {
        for (int j = 0; j < cols; j++) {
            int32_t s = 0;
            for (int q = 0; q < k4; q++) {
                const int8_t *wa = a + (size_t)q * PANEL * 4 + r * 4;
                const uint8_t *xb = b + ((size_t)q * ldb + j) * 4;
                s += wa[0] * xb[0] + wa[1] * xb[1] + wa[2] * xb[2] + wa[3] * xb[3];
            }
            finish_one(f, m0 + r, n0 + j, s);
        }
    }
}

#ifdef CNN_X86
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void tile_vnni(int k4, const int8_t *a, const uint8_t *b, int ldb, int m0, int rows, int n0, int cols,
                      const finish_t *f) {
    __m512i acc[PANEL][2];
    _Pragma("clang loop unroll(full)") for (int r = 0; r < PANEL; r++) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
    const size_t step = (size_t)ldb * 4;
    const int32_t *wa = (const int32_t *)a;
    for (int q = 0; q < k4; q++, b += step, wa += PANEL) {
        __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
        _Pragma("clang loop unroll(full)") for (int r = 0; r < PANEL; r++) {
            __m512i w = _mm512_set1_epi32(wa[r]);
            acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], b0, w);
            acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], b1, w);
        }
    }
    const __mmask16 m0mask = cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1);
    const __mmask16 m1mask = cols >= 32 ? (__mmask16)0xFFFF : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
    _Pragma("clang loop unroll(full)") for (int r = 0; r < PANEL; r++) {
        if (r >= rows) continue;
        const int m = m0 + r;
        if (f->C32) {
            int32_t *out = f->C32 + (size_t)m * f->ldc32 + n0;
            _mm512_mask_storeu_epi32(out, m0mask, acc[r][0]);
            _mm512_mask_storeu_epi32(out + 16, m1mask, acc[r][1]);
        } else {
            const __m512 s = _mm512_set1_ps(f->scale[m]), t = _mm512_set1_ps(f->shift[m]);
            __m512 y0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][0]), s, t);
            __m512 y1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][1]), s, t);
            if (f->relu) {
                y0 = _mm512_max_ps(y0, _mm512_setzero_ps());
                y1 = _mm512_max_ps(y1, _mm512_setzero_ps());
            }
            float *out = f->C + (size_t)m * f->ldc + n0;
            _mm512_mask_storeu_ps(out, m0mask, y0);
            _mm512_mask_storeu_ps(out + 16, m1mask, y1);
        }
    }
}

// 4 rows (half a panel: a points at its first row) x 16 columns.
__attribute__((target("avx2,fma")))
static void tile_avx2(int k4, const int8_t *a, const uint8_t *b, int ldb, int m0, int rows, int n0, int cols,
                      const finish_t *f) {
    __m256i acc[4][2];
    _Pragma("clang loop unroll(full)") for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    const __m256i ones = _mm256_set1_epi16(1);
    const size_t step = (size_t)ldb * 4;
    const int32_t *wa = (const int32_t *)a;
    for (int q = 0; q < k4; q++, b += step, wa += PANEL) {
        __m256i b0 = _mm256_loadu_si256((const __m256i *)b), b1 = _mm256_loadu_si256((const __m256i *)(b + 32));
        _Pragma("clang loop unroll(full)") for (int r = 0; r < 4; r++) {
            __m256i w = _mm256_set1_epi32(wa[r]);
            // Pairs of products in int16: exact, as |w| <= 63 (see cnn_int8.h); then pairs of pairs in int32.
            acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(b0, w), ones));
            acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(b1, w), ones));
        }
    }
    const __m256i mask0 = cnn_lanes_avx2(cols), mask1 = cnn_lanes_avx2(cols - 8);
    _Pragma("clang loop unroll(full)") for (int r = 0; r < 4; r++) {
        if (r >= rows) continue;
        const int m = m0 + r;
        if (f->C32) {
            int32_t *out = f->C32 + (size_t)m * f->ldc32 + n0;
            _mm256_maskstore_epi32((int *)out, mask0, acc[r][0]);
            _mm256_maskstore_epi32((int *)out + 8, mask1, acc[r][1]);
        } else {
            const __m256 s = _mm256_set1_ps(f->scale[m]), t = _mm256_set1_ps(f->shift[m]);
            __m256 y0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r][0]), s, t);
            __m256 y1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r][1]), s, t);
            if (f->relu) {
                y0 = _mm256_max_ps(y0, _mm256_setzero_ps());
                y1 = _mm256_max_ps(y1, _mm256_setzero_ps());
            }
            float *out = f->C + (size_t)m * f->ldc + n0;
            _mm256_maskstore_ps(out, mask0, y0);
            _mm256_maskstore_ps(out + 8, mask1, y1);
        }
    }
}
#endif

// ---- GEMM ------------------------------------------------------------------------------------------------------

typedef enum { KERNEL_PORTABLE, KERNEL_AVX2, KERNEL_VNNI } kernel_kind;

static kernel_kind kernel_for(cnn_isa isa) {
#ifdef CNN_X86
    if (isa > cnn_isa_detected()) isa = cnn_isa_detected();
    if (isa == CNN_ISA_AVX512 && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw")) return KERNEL_VNNI;
    if (isa >= CNN_ISA_AVX2) return KERNEL_AVX2;
#else
    (void)isa;
#endif
    return KERNEL_PORTABLE;
}

const char *cnn_int8_kernel_name(cnn_isa isa) {
    switch (kernel_for(isa)) {
    case KERNEL_VNNI: return "avx512-vnni";
    case KERNEL_AVX2: return "avx2";
    default: return "portable";
    }
}

typedef struct {
    kernel_kind kind;
    int M, N, K, ldb, blocks, chunks;
    const int8_t *packed;
    const uint8_t *columns;
    finish_t finish;
} gemm_job;

/// Columns blocks [first, last) of the job: for each block of rows that stays in L2, each block of 32 columns, each
/// panel of 8 rows.
static void gemm_chunk(void *context, int chunk) {
    const gemm_job *job = context;
    const int first = (int)((long)job->blocks * chunk / job->chunks), last = (int)((long)job->blocks * (chunk + 1) / job->chunks);
    const int k4 = quads(job->K), panels = (job->M + PANEL - 1) / PANEL;
    // Panels of weights per block of rows: about 256 KB, which stay in L2 while the column blocks stream past.
    int rows_block = 262144 / (k4 * 4 * PANEL);
    if (rows_block < 1) rows_block = 1;
    for (int p0 = 0; p0 < panels; p0 += rows_block) {
        const int p1 = p0 + rows_block < panels ? p0 + rows_block : panels;
        for (int blk = first; blk < last; blk++) {
            const int n0 = blk * BLOCK, cols = job->N - n0 < BLOCK ? job->N - n0 : BLOCK;
            const uint8_t *b = job->columns + (size_t)n0 * 4;
            for (int p = p0; p < p1; p++) {
                const int8_t *a = job->packed + (size_t)p * k4 * PANEL * 4;
                const int m0 = p * PANEL, rows = job->M - m0 < PANEL ? job->M - m0 : PANEL;
                switch (job->kind) {
#ifdef CNN_X86
                case KERNEL_VNNI: tile_vnni(k4, a, b, job->ldb, m0, rows, n0, cols, &job->finish); break;
                case KERNEL_AVX2:
                    for (int half = 0; half < 2 && half * 4 < rows; half++)
                        for (int j = 0; j < cols; j += 16)
                            tile_avx2(k4, a + half * 16, b + (size_t)j * 4, job->ldb, m0 + half * 4,
                                      rows - half * 4 < 4 ? rows - half * 4 : 4, n0 + j, cols - j < 16 ? cols - j : 16,
                                      &job->finish);
                    break;
#endif
                default: tile_portable(k4, a, b, job->ldb, m0, rows, n0, cols, &job->finish); break;
                }
            }
        }
    }
}

void cnn_int8_gemm_isa(cnn_isa isa, int M, int N, int K, const int8_t *packed, const uint8_t *columns, int ldb,
                       const float *scale, const float *shift, int relu, float *C, int ldc, int32_t *C32, int ldc32,
                       int threads) {
    if (M <= 0 || N <= 0) return;
    gemm_job job = {
        .kind = kernel_for(isa), .M = M, .N = N, .K = K, .ldb = ldb, .blocks = (N + BLOCK - 1) / BLOCK,
        .packed = packed, .columns = columns,
        .finish = {.scale = scale, .shift = shift, .relu = relu, .C = C, .ldc = ldc, .C32 = C32, .ldc32 = ldc32},
    };
    job.chunks = threads < job.blocks ? threads : job.blocks;
    if (job.chunks < 1) job.chunks = 1;
    if (job.chunks == 1) return gemm_chunk(&job, 0);
    cnn_parallel_run(job.chunks, job.chunks, gemm_chunk, &job);
}

void cnn_int8_gemm(int M, int N, int K, const int8_t *packed, const uint8_t *columns, int ldb, const float *scale,
                   const float *shift, int relu, float *C, int ldc, int threads) {
    cnn_int8_gemm_isa(cnn_isa_active(), M, N, K, packed, columns, ldb, scale, shift, relu, C, ldc, NULL, 0, threads);
}

// ---- The oracle ------------------------------------------------------------------------------------------------

void cnn_int8_conv_naive(const uint8_t *x, int C, int H, int W, const int8_t *w, int CO, int KH, int KW, int SH, int SW,
                         int PH, int PW, int OH, int OW, uint8_t zero_point, int32_t *y) {
    for (int co = 0; co < CO; co++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                int32_t s = 0;
                for (int c = 0; c < C; c++)
                    for (int ky = 0; ky < KH; ky++)
                        for (int kx = 0; kx < KW; kx++) {
                            const int iy = oy * SH - PH + ky, ix = ox * SW - PW + kx;
                            const int v = iy < 0 || iy >= H || ix < 0 || ix >= W ? zero_point : x[((size_t)c * H + iy) * W + ix];
                            s += v * w[(((size_t)co * C + c) * KH + ky) * KW + kx];
                        }
                y[((size_t)co * OH + oy) * OW + ox] = s;
            }
}
