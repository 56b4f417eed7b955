// Max and average pooling over planes (a plane is one channel of one image), overlapping windows allowed.
// Legend: H x W input, KH x KW window, SH/SW stride, PH/PW top/left padding, OH x OW output.
#include "cnn_kernels.h"
#include "avx2.h"
#include <float.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

/// The common 2x2 stride-2 unpadded case, branch-free: the same choices as the general loop (the first maximum in
/// row-major window order wins; a NaN wins).
static void maxpool_2x2(const float *x, int planes, int H, int W, int OH, int OW, float *restrict y, int32_t *restrict argmax) {
    for (int n = 0; n < planes; n++, x += (size_t)H * W)
        for (int oh = 0; oh < OH; oh++) {
            const float *r0 = x + (size_t)(2 * oh) * W, *r1 = r0 + W;
            for (int ow = 0; ow < OW; ow++, y++, argmax++) {
                float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
                float m = a;
                int k = 0;
                int take = a == a && (b > m || b != b); m = take ? b : m; k = take ? 1 : k;
                take = m == m && (c > m || c != c); m = take ? c : m; k = take ? 2 : k;
                take = m == m && (d > m || d != d); m = take ? d : m; k = take ? 3 : k;
                *y = m;
                *argmax = (2 * oh + (k >> 1)) * W + 2 * ow + (k & 1);
            }
        }
}

/// maxpool_2x2 for inference: the same maxima, no indices.
static void maxpool_2x2_values(const float *x, int planes, int H, int W, int OH, int OW, float *restrict y) {
    for (int n = 0; n < planes; n++, x += (size_t)H * W)
        for (int oh = 0; oh < OH; oh++) {
            const float *r0 = x + (size_t)(2 * oh) * W, *r1 = r0 + W;
            for (int ow = 0; ow < OW; ow++, y++) {
                float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
                float m = a;
                int take = a == a && (b > m || b != b); m = take ? b : m;
                take = m == m && (c > m || c != c); m = take ? c : m;
                take = m == m && (d > m || d != d); m = take ? d : m;
                *y = m;
            }
        }
}

enum { SEPARABLE_MAX = 1 << 14 };

/// The larger of m and v as the general loop chooses: v replaces m when greater, or when it is the first NaN.
static inline int takes(float m, float v) { return m == m && (v > m || v != v); }

/// Max pooling with any window, stride and padding, in two passes: each input row's maxima over the window's columns
/// (the leftmost wins), then each output row's maxima over the window's rows of those (the topmost wins). That is
/// the value and the index the general loop's row-major scan picks, for every window. The indices are kept when
/// `argmax` is given (training). GoogLeNet's pooling branches (3x3, stride 1, padding 1) and its 3x3 stride-2
/// pools spent a fifth of a step in the general loop's branches.
#if defined(__x86_64__)
__attribute__((target("avx512f")))
static inline __mmask16 takes16(__m512 m, __m512 v) {
    return _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) | (_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) & _mm512_cmp_ps_mask(m, m, _CMP_ORD_Q));
}
#endif

static void maxpool_separable(const float *x, int planes, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                              int OH, int OW, float *restrict y, int32_t *restrict argmax, cnn_isa isa);

void cnn_maxpool_forward(const float *x, int planes, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                         int OH, int OW, float *y, int32_t *argmax) {
    cnn_maxpool_forward_isa(cnn_isa_active(), x, planes, H, W, KH, KW, SH, SW, PH, PW, OH, OW, y, argmax);
}

void cnn_maxpool_forward_isa(cnn_isa isa, const float *x, int planes, int H, int W, int KH, int KW, int SH, int SW, int PH,
                             int PW, int OH, int OW, float *y, int32_t *argmax) {
    int two_by_two = KH == 2 && KW == 2 && SH == 2 && SW == 2 && PH == 0 && PW == 0 && 2 * OH <= H && 2 * OW <= W;
#if defined(__x86_64__)
    // Inference on AVX-512 or AVX2 with rows of 8 outputs or more: the separable passes without indices (plain
    // maxima where a plane has no NaN) beat the scalar 2x2 loop (LeNet-5's pool1 at batch 1,000: 1.57 against
    // 0.99 ms on 2 threads); on narrower rows (pool2's 5) the loop stays faster (0.58 against 0.81 ms).
    const int vector = (isa == CNN_ISA_AVX512 || isa == CNN_ISA_AVX2) && isa <= cnn_isa_detected();
#else
    const int vector = 0;
#endif
    if (two_by_two && !argmax && vector && OW >= 8 && (size_t)H * OW <= SEPARABLE_MAX)
        maxpool_separable(x, planes, H, W, KH, KW, SH, SW, PH, PW, OH, OW, y, argmax, isa);
    else if (two_by_two && !argmax)
        maxpool_2x2_values(x, planes, H, W, OH, OW, y);
    else if (two_by_two)
        maxpool_2x2(x, planes, H, W, OH, OW, y, argmax);
    else if ((size_t)H * OW <= SEPARABLE_MAX)
        maxpool_separable(x, planes, H, W, KH, KW, SH, SW, PH, PW, OH, OW, y, argmax, isa);
    else
        cnn_maxpool_forward_naive(x, planes, H, W, KH, KW, SH, SW, PH, PW, OH, OW, y, argmax);
}

#if defined(__x86_64__)
/// The horizontal passes' load of one window column for 16 outputs from input column `base`, on AVX-512: 16 values
/// for stride 1, the even elements of 32 for stride 2 (the passes serve no other stride); zeros past the row's end.
__attribute__((target("avx512f")))
static inline __m512 window_column_avx512(const float *in, int W, int SW, int base, __mmask16 live) {
    if (SW == 1) return _mm512_maskz_loadu_ps(live, in + base);
    const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    int rest = W - base;
    __mmask16 low = rest >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rest) - 1);
    __mmask16 high = rest >= 32 ? (__mmask16)0xFFFF : rest <= 16 ? 0 : (__mmask16)((1u << (rest - 16)) - 1);
    return _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(low, in + base), evens, _mm512_maskz_loadu_ps(high, in + base + 16));
}

/// The vertical pass on AVX-512: out[ow] and its index over rows h0 ..< h1 of `rows`/`columns`, 16 outputs at a time.
__attribute__((target("avx512f")))
static void vertical_avx512(const float *rows, const int32_t *columns, int OW, int W, int h0, int h1, float *out,
                            int32_t *index) {
    const __m512i width = _mm512_set1_epi32(W);
    for (int ow = 0; ow < OW; ow += 16) {
        __mmask16 live = OW - ow >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (OW - ow)) - 1);
        __m512 m = _mm512_maskz_loadu_ps(live, rows + (size_t)h0 * OW + ow);
        __m512i where_h = _mm512_set1_epi32(h0);
        __m512i where_w = index ? _mm512_maskz_loadu_epi32(live, columns + (size_t)h0 * OW + ow) : _mm512_setzero_si512();
        for (int h = h0 + 1; h < h1; h++) {
            __m512 v = _mm512_maskz_loadu_ps(live, rows + (size_t)h * OW + ow);
            __mmask16 take = takes16(m, v) & live;
            m = _mm512_mask_mov_ps(m, take, v);
            if (index) {
                where_h = _mm512_mask_mov_epi32(where_h, take, _mm512_set1_epi32(h));
                where_w = _mm512_mask_loadu_epi32(where_w, take, columns + (size_t)h * OW + ow);
            }
        }
        _mm512_mask_storeu_ps(out + ow, live, m);
        if (index) _mm512_mask_storeu_epi32(index + ow, live, _mm512_add_epi32(_mm512_mullo_epi32(where_h, width), where_w));
    }
}

/// The horizontal pass's interior on AVX-512 for strides 1 and 2: outputs ow0 ..< ow1, whose windows lie inside the
/// row. With stride 2 the window's k-th columns of 16 outputs are the even elements of 32 from column 2 ow - PW + k.
__attribute__((target("avx512f")))
static void horizontal_avx512(const float *in, int W, int KW, int SW, int PW, int ow0, int ow1, float *out, int32_t *column) {
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i step = _mm512_mullo_epi32(iota, _mm512_set1_epi32(SW));
    for (int ow = ow0; ow < ow1; ow += 16) {
        __mmask16 live = ow1 - ow >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (ow1 - ow)) - 1);
        const int w0 = ow * SW - PW;
        __m512 m = _mm512_setzero_ps();
        __m512i where = _mm512_setzero_si512();
        for (int k = 0; k < KW; k++) {
            const int base = w0 + k;
            const __m512 v = window_column_avx512(in, W, SW, base, live);
            __m512i here = _mm512_add_epi32(_mm512_set1_epi32(base), step);
            if (k == 0) {
                m = v;
                where = here;
                continue;
            }
            __mmask16 take = takes16(m, v) & live;
            m = _mm512_mask_mov_ps(m, take, v);
            where = _mm512_mask_mov_epi32(where, take, here);
        }
        _mm512_mask_storeu_ps(out + ow, live, m);
        _mm512_mask_storeu_epi32(column + ow, live, where);
    }
}
#endif

#if defined(__x86_64__)
/// AVX2's twins of the two passes, 8 outputs at a time: the same choices (the first NaN, else the greater; ties keep
/// the earlier), the same indices.
__attribute__((target("avx2")))
static inline __m256 takes8(__m256 m, __m256 v) {
    return _mm256_or_ps(_mm256_cmp_ps(v, m, _CMP_GT_OQ), _mm256_and_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), _mm256_cmp_ps(m, m, _CMP_ORD_Q)));
}

/// The AVX2 twin of window_column_avx512, 8 outputs: for stride 2 the even elements of 16 (shuffled within
/// lanes, then the 128-bit halves put in order).
__attribute__((target("avx2")))
static inline __m256 window_column_avx2(const float *in, int W, int SW, int base, __m256i live) {
    if (SW == 1) return _mm256_maskload_ps(in + base, live);
    int rest = W - base;
    __m256 lo = _mm256_maskload_ps(in + base, cnn_lanes_avx2(rest)), hi = _mm256_maskload_ps(in + base + 8, cnn_lanes_avx2(rest - 8));
    __m256 evens = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(evens), _MM_SHUFFLE(3, 1, 2, 0)));
}

__attribute__((target("avx2")))
static void vertical_avx2(const float *rows, const int32_t *columns, int OW, int W, int h0, int h1, float *out, int32_t *index) {
    const __m256i width = _mm256_set1_epi32(W);
    for (int ow = 0; ow < OW; ow += 8) {
        const __m256i live = cnn_lanes_avx2(OW - ow);
        __m256 m = _mm256_maskload_ps(rows + (size_t)h0 * OW + ow, live);
        __m256i where_h = _mm256_set1_epi32(h0);
        __m256i where_w = index ? _mm256_maskload_epi32(columns + (size_t)h0 * OW + ow, live) : _mm256_setzero_si256();
        for (int h = h0 + 1; h < h1; h++) {
            __m256 v = _mm256_maskload_ps(rows + (size_t)h * OW + ow, live);
            __m256 take = _mm256_and_ps(takes8(m, v), _mm256_castsi256_ps(live));
            m = _mm256_blendv_ps(m, v, take);
            if (index) {
                where_h = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(where_h), _mm256_castsi256_ps(_mm256_set1_epi32(h)), take));
                __m256i w = _mm256_maskload_epi32(columns + (size_t)h * OW + ow, live);
                where_w = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(where_w), _mm256_castsi256_ps(w), take));
            }
        }
        _mm256_maskstore_ps(out + ow, live, m);
        if (index) _mm256_maskstore_epi32(index + ow, live, _mm256_add_epi32(_mm256_mullo_epi32(where_h, width), where_w));
    }
}

__attribute__((target("avx2")))
static void horizontal_avx2(const float *in, int W, int KW, int SW, int PW, int ow0, int ow1, float *out, int32_t *column) {
    const __m256i step = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(SW));
    for (int ow = ow0; ow < ow1; ow += 8) {
        const __m256i live = cnn_lanes_avx2(ow1 - ow);
        const int w0 = ow * SW - PW;
        __m256 m = _mm256_setzero_ps();
        __m256i where = _mm256_setzero_si256();
        for (int k = 0; k < KW; k++) {
            const int base = w0 + k;
            const __m256 v = window_column_avx2(in, W, SW, base, live);
            __m256i here = _mm256_add_epi32(_mm256_set1_epi32(base), step);
            if (k == 0) {
                m = v;
                where = here;
                continue;
            }
            __m256 take = _mm256_and_ps(takes8(m, v), _mm256_castsi256_ps(live));
            m = _mm256_blendv_ps(m, v, take);
            where = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(where), _mm256_castsi256_ps(here), take));
        }
        _mm256_maskstore_ps(out + ow, live, m);
        _mm256_maskstore_epi32(column + ow, live, where);
    }
}
#endif

#if defined(__x86_64__)
// Inference keeps no indices, and a plane without NaN needs none of the NaN rules: each maximum is then
// max(v, m) = v > m ? v : m, which keeps the earlier value on ties (+0 beside -0) as the general loop does, so the
// values are the same bits. A plane holding a NaN takes the passes above.

/// Whether any of x[0 ..< count] is NaN.
__attribute__((target("avx512f")))
static int has_nan_avx512(const float *x, size_t count) {
    __mmask16 nan = 0;
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    }
    for (; i < count; i++) nan |= x[i] != x[i];
    return nan != 0;
}

/// vertical_avx512 without indices, for rows without NaN.
__attribute__((target("avx512f")))
static void vertical_values_avx512(const float *rows, int OW, int h0, int h1, float *out) {
    for (int ow = 0; ow < OW; ow += 16) {
        __mmask16 live = OW - ow >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (OW - ow)) - 1);
        __m512 m = _mm512_maskz_loadu_ps(live, rows + (size_t)h0 * OW + ow);
        for (int h = h0 + 1; h < h1; h++) m = _mm512_max_ps(_mm512_maskz_loadu_ps(live, rows + (size_t)h * OW + ow), m);
        _mm512_mask_storeu_ps(out + ow, live, m);
    }
}

/// horizontal_avx512 without indices, for rows without NaN.
__attribute__((target("avx512f")))
static void horizontal_values_avx512(const float *in, int W, int KW, int SW, int PW, int ow0, int ow1, float *out) {
    for (int ow = ow0; ow < ow1; ow += 16) {
        __mmask16 live = ow1 - ow >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (ow1 - ow)) - 1);
        const int w0 = ow * SW - PW;
        __m512 m = _mm512_setzero_ps();
        for (int k = 0; k < KW; k++) {
            const __m512 v = window_column_avx512(in, W, SW, w0 + k, live);
            m = k == 0 ? v : _mm512_max_ps(v, m);
        }
        _mm512_mask_storeu_ps(out + ow, live, m);
    }
}

/// The AVX2 twins.
__attribute__((target("avx2")))
static int has_nan_avx2(const float *x, size_t count) {
    __m256 nan = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    int any = _mm256_movemask_ps(nan) != 0;
    for (; i < count; i++) any |= x[i] != x[i];
    return any;
}

__attribute__((target("avx2")))
static void vertical_values_avx2(const float *rows, int OW, int h0, int h1, float *out) {
    for (int ow = 0; ow < OW; ow += 8) {
        const __m256i live = cnn_lanes_avx2(OW - ow);
        __m256 m = _mm256_maskload_ps(rows + (size_t)h0 * OW + ow, live);
        for (int h = h0 + 1; h < h1; h++) m = _mm256_max_ps(_mm256_maskload_ps(rows + (size_t)h * OW + ow, live), m);
        _mm256_maskstore_ps(out + ow, live, m);
    }
}

__attribute__((target("avx2")))
static void horizontal_values_avx2(const float *in, int W, int KW, int SW, int PW, int ow0, int ow1, float *out) {
    for (int ow = ow0; ow < ow1; ow += 8) {
        const __m256i live = cnn_lanes_avx2(ow1 - ow);
        const int w0 = ow * SW - PW;
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < KW; k++) {
            const __m256 v = window_column_avx2(in, W, SW, w0 + k, live);
            m = k == 0 ? v : _mm256_max_ps(v, m);
        }
        _mm256_maskstore_ps(out + ow, live, m);
    }
}
#endif

static void maxpool_separable(const float *x, int planes, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                              int OH, int OW, float *restrict y, int32_t *restrict argmax, cnn_isa isa) {
    float rows[SEPARABLE_MAX];      // [H][OW]: each input row's maxima over the windows' columns
    int32_t columns[SEPARABLE_MAX];  // and the input column of each
#if defined(__x86_64__)
    const int avx512 = isa == CNN_ISA_AVX512 && isa <= cnn_isa_detected(), avx2 = isa == CNN_ISA_AVX2 && isa <= cnn_isa_detected();
#else
    const int avx512 = 0, avx2 = 0;
    (void)isa;
#endif
    // Outputs whose windows lie inside the row (no padding, no clipping): [inner0, inner1).
    int inner0 = (PW + SW - 1) / SW, inner1 = W - KW + PW >= 0 ? (W - KW + PW) / SW + 1 : 0;
    if (inner1 > OW) inner1 = OW;
    if (inner0 > inner1) inner0 = inner1;
    for (int n = 0; n < planes; n++, x += (size_t)H * W, y += (size_t)OH * OW, argmax += argmax ? (size_t)OH * OW : 0) {
        int values = 0;  // no indices wanted and no NaN in the plane: the passes without either
#if defined(__x86_64__)
        if (!argmax && avx512) values = !has_nan_avx512(x, (size_t)H * W);
        if (!argmax && avx2) values = !has_nan_avx2(x, (size_t)H * W);
#else
        (void)values;
#endif
        for (int h = 0; h < H; h++) {
            const float *in = x + (size_t)h * W;
            float *out = rows + (size_t)h * OW;
            int32_t *column = columns + (size_t)h * OW;
            int vector0 = (avx512 || avx2) && SW <= 2 ? inner0 : OW, vector1 = (avx512 || avx2) && SW <= 2 ? inner1 : OW;
#if defined(__x86_64__)
            if (vector0 < vector1 && avx512 && values) horizontal_values_avx512(in, W, KW, SW, PW, vector0, vector1, out);
            else if (vector0 < vector1 && avx512) horizontal_avx512(in, W, KW, SW, PW, vector0, vector1, out, column);
            if (vector0 < vector1 && avx2 && values) horizontal_values_avx2(in, W, KW, SW, PW, vector0, vector1, out);
            else if (vector0 < vector1 && avx2) horizontal_avx2(in, W, KW, SW, PW, vector0, vector1, out, column);
#endif
            for (int ow = 0; ow < OW; ow++) {
                if (ow == vector0) ow = vector1;
                if (ow >= OW) break;
                int w0 = ow * SW - PW, w1 = w0 + KW;
                if (w0 < 0) w0 = 0;
                if (w1 > W) w1 = W;
                float m = in[w0];
                int where = w0;
                for (int w = w0 + 1; w < w1; w++)
                    if (takes(m, in[w])) { m = in[w]; where = w; }
                out[ow] = m;
                column[ow] = where;
            }
        }
        for (int oh = 0; oh < OH; oh++) {
            int h0 = oh * SH - PH, h1 = h0 + KH;
            if (h0 < 0) h0 = 0;
            if (h1 > H) h1 = H;
            float *out = y + (size_t)oh * OW;
            int32_t *index = argmax ? argmax + (size_t)oh * OW : NULL;
#if defined(__x86_64__)
            if (avx512 && values) {
                vertical_values_avx512(rows, OW, h0, h1, out);
                continue;
            }
            if (avx2 && values) {
                vertical_values_avx2(rows, OW, h0, h1, out);
                continue;
            }
            if (avx512) {
                vertical_avx512(rows, columns, OW, W, h0, h1, out, index);
                continue;
            }
            if (avx2) {
                vertical_avx2(rows, columns, OW, W, h0, h1, out, index);
                continue;
            }
#endif
            for (int ow = 0; ow < OW; ow++) {
                float m = rows[(size_t)h0 * OW + ow];
                int where = h0;
                for (int h = h0 + 1; h < h1; h++)
                    if (takes(m, rows[(size_t)h * OW + ow])) { m = rows[(size_t)h * OW + ow]; where = h; }
                out[ow] = m;
                if (index) index[ow] = where * W + columns[(size_t)where * OW + ow];
            }
        }
    }
}


void cnn_maxpool_forward_naive(const float *x, int planes, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                               int OH, int OW, float *y, int32_t *argmax) {
    for (int n = 0; n < planes; n++, x += (size_t)H * W)
        for (int oh = 0; oh < OH; oh++) {
            int h0 = oh * SH - PH, h1 = h0 + KH;
            if (h0 < 0) h0 = 0;
            if (h1 > H) h1 = H;
            for (int ow = 0; ow < OW; ow++, y++, argmax += argmax != NULL) {
                int w0 = ow * SW - PW, w1 = w0 + KW;
                if (w0 < 0) w0 = 0;
                if (w1 > W) w1 = W;
                // The window's first value, then any greater one (so a window of -infinity gives -infinity).
                float best = 0;
                int32_t where = -1;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++) {
                        float v = x[h * W + w];
                        if (where < 0 || v > best || v != v) { best = v; where = h * W + w; if (v != v) goto done; }
                    }
            done:
                *y = best;
                if (argmax) *argmax = where;
            }
        }
}

void cnn_maxpool_backward(const float *dy, const int32_t *argmax, int planes, int H, int W, int OH, int OW, float *dx) {
    memset(dx, 0, sizeof(float) * (size_t)planes * H * W);
    for (int n = 0; n < planes; n++, dx += (size_t)H * W)
        for (int i = 0; i < OH * OW; i++, dy++, argmax++) dx[*argmax] += *dy;
}

/// The window of output (oh, ow) clipped to the input, and the divisor of the average.
static inline void avg_window(int oh, int ow, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                              int count_include_pad, int *h0, int *h1, int *w0, int *w1, float *divisor) {
    int hs = oh * SH - PH, ws = ow * SW - PW;
    int he = hs + KH, we = ws + KW;
    if (he > H + PH) he = H + PH;
    if (we > W + PW) we = W + PW;
    int padded = (he - hs) * (we - ws);
    if (hs < 0) hs = 0;
    if (ws < 0) ws = 0;
    if (he > H) he = H;
    if (we > W) we = W;
    *h0 = hs; *h1 = he; *w0 = ws; *w1 = we;
    int area = (he - hs) * (we - ws);
    *divisor = (float)(count_include_pad ? padded : (area > 0 ? area : 1));
}

void cnn_avgpool_forward(const float *x, int planes, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                         int OH, int OW, int count_include_pad, float *y) {
    for (int n = 0; n < planes; n++, x += (size_t)H * W)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++, y++) {
                int h0, h1, w0, w1;
                float divisor;
                avg_window(oh, ow, H, W, KH, KW, SH, SW, PH, PW, count_include_pad, &h0, &h1, &w0, &w1, &divisor);
                float sum = 0;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++) sum += x[h * W + w];
                *y = sum / divisor;
            }
}

void cnn_avgpool_backward(const float *dy, int planes, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                          int OH, int OW, int count_include_pad, float *dx) {
    memset(dx, 0, sizeof(float) * (size_t)planes * H * W);
    for (int n = 0; n < planes; n++, dx += (size_t)H * W)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++, dy++) {
                int h0, h1, w0, w1;
                float divisor;
                avg_window(oh, ow, H, W, KH, KW, SH, SW, PH, PW, count_include_pad, &h0, &h1, &w0, &w1, &divisor);
                float g = *dy / divisor;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++) dx[h * W + w] += g;
            }
}
