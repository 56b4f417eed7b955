// Direct convolution for layers with few input taps (LeNet's C1: one channel, 5x5), where lowering to GEMM
// leaves the register tiles mostly empty (M = 6 output channels, K = 25). Stride 1, no padding, one group.
// The output width is vectorised 16 at a time (masked at the edge): one zmm on AVX-512, two ymm on AVX2; up to 6
// output channels share each load. The AVX2 weight gradient blocks 4 channels x 2 kernel columns, which with the
// loads fits its 16 registers (AVX-512's 6 x 4 needs 32).
//
// Legend: C input channels, H x W input, CO output channels, KH x KW kernel, OH x OW output (OH = H - KH + 1).
#include "cnn_kernels.h"
#include "avx2.h"
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>

enum { CB = 6, KB = 4 };  // output channels per block; kernel columns per block of the weight gradient

__attribute__((target("avx512f")))
static void forward_avx512(const float *x, int C, int H, int W, const float *w, const float *bias, int relu, int CO,
                           int KH, int KW, int OH, int OW, float *y) {
    const int taps = C * KH * KW;
    for (int co0 = 0; co0 < CO; co0 += CB) {
        const int cb = CO - co0 < CB ? CO - co0 : CB;
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow += 16) {
                const __mmask16 m = OW - ow >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (OW - ow)) - 1);
                __m512 acc[CB];
                for (int j = 0; j < CB; j++) acc[j] = _mm512_set1_ps(bias && j < cb ? bias[co0 + j] : 0.0f);
                for (int ci = 0; ci < C; ci++)
                    for (int kh = 0; kh < KH; kh++) {
                        const float *row = x + ((size_t)ci * H + oh + kh) * W + ow;
                        const float *wk = w + ((size_t)co0 * C + ci) * KH * KW + (size_t)kh * KW;
                        for (int kw = 0; kw < KW; kw++) {
                            const __m512 v = _mm512_maskz_loadu_ps(m, row + kw);
                            for (int j = 0; j < CB; j++)
                                if (j < cb) acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(wk[(size_t)j * taps + kw]), v, acc[j]);
                        }
                    }
                if (relu)
                    for (int j = 0; j < cb; j++) acc[j] = _mm512_max_ps(acc[j], _mm512_setzero_ps());
                for (int j = 0; j < cb; j++) _mm512_mask_storeu_ps(y + ((size_t)(co0 + j) * OH + oh) * OW + ow, m, acc[j]);
            }
    }
}

__attribute__((target("avx512f")))
static void weight_gradient_avx512(const float *x, int C, int H, int W, const float *dy, int CO, int KH, int KW,
                                   int OH, int OW, float *dw) {
    for (int co0 = 0; co0 < CO; co0 += CB) {
        const int cb = CO - co0 < CB ? CO - co0 : CB;
        for (int ci = 0; ci < C; ci++)
            for (int kh = 0; kh < KH; kh++)
                for (int kw0 = 0; kw0 < KW; kw0 += KB) {
                    const int kb = KW - kw0 < KB ? KW - kw0 : KB;
                    __m512 acc[CB][KB];
                    for (int j = 0; j < CB; j++)
                        for (int k = 0; k < KB; k++) acc[j][k] = _mm512_setzero_ps();
                    for (int oh = 0; oh < OH; oh++) {
                        const float *row = x + ((size_t)ci * H + oh + kh) * W + kw0;
                        for (int ow = 0; ow < OW; ow += 16) {
                            const __mmask16 m = OW - ow >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (OW - ow)) - 1);
                            __m512 g[CB];
                            for (int j = 0; j < CB; j++)
                                g[j] = j < cb ? _mm512_maskz_loadu_ps(m, dy + ((size_t)(co0 + j) * OH + oh) * OW + ow)
                                              : _mm512_setzero_ps();
                            for (int k = 0; k < KB; k++) {
                                if (k >= kb) break;
                                const __m512 v = _mm512_maskz_loadu_ps(m, row + ow + k);
                                for (int j = 0; j < CB; j++) acc[j][k] = _mm512_fmadd_ps(g[j], v, acc[j][k]);
                            }
                        }
                    }
                    for (int j = 0; j < cb; j++)
                        for (int k = 0; k < kb; k++)
                            dw[(((size_t)(co0 + j) * C + ci) * KH + kh) * KW + kw0 + k] += _mm512_reduce_add_ps(acc[j][k]);
                }
    }
}

/// One 16-wide chunk of output row oh for output channels co0 ..< co0 + cb. `full` (a constant at each call) when all 16
/// columns exist: plain loads and stores, where the tail chunk masks them (AMD's masked moves are slow, the stores
/// microcoded on Zen 2).
__attribute__((target("avx2,fma")))
__attribute__((always_inline)) static inline void forward_chunk_avx2(const float *x, int C, int H, int W, const float *w,
                                                                      const float *bias, int relu, int co0, int cb,
                                                                      int taps, int KH, int KW, int OH, int OW, int oh,
                                                                      int ow, int full, float *y) {
    const __m256i m0 = cnn_lanes_avx2(OW - ow), m1 = cnn_lanes_avx2(OW - ow - 8);
    __m256 lo[CB], hi[CB];
    for (int j = 0; j < CB; j++) lo[j] = hi[j] = _mm256_set1_ps(bias && j < cb ? bias[co0 + j] : 0.0f);
    for (int ci = 0; ci < C; ci++)
        for (int kh = 0; kh < KH; kh++) {
            const float *row = x + ((size_t)ci * H + oh + kh) * W + ow;
            const float *wk = w + ((size_t)co0 * C + ci) * KH * KW + (size_t)kh * KW;
            for (int kw = 0; kw < KW; kw++) {
                const __m256 v0 = full ? _mm256_loadu_ps(row + kw) : _mm256_maskload_ps(row + kw, m0);
                const __m256 v1 = full ? _mm256_loadu_ps(row + kw + 8) : _mm256_maskload_ps(row + kw + 8, m1);
                for (int j = 0; j < CB; j++)
                    if (j < cb) {
                        const __m256 k = _mm256_broadcast_ss(wk + (size_t)j * taps + kw);
                        lo[j] = _mm256_fmadd_ps(k, v0, lo[j]);
                        hi[j] = _mm256_fmadd_ps(k, v1, hi[j]);
                    }
            }
        }
    for (int j = 0; j < cb; j++) {
        if (relu) {
            lo[j] = _mm256_max_ps(lo[j], _mm256_setzero_ps());
            hi[j] = _mm256_max_ps(hi[j], _mm256_setzero_ps());
        }
        float *out = y + ((size_t)(co0 + j) * OH + oh) * OW + ow;
        if (full || OW - ow >= 8) _mm256_storeu_ps(out, lo[j]);
        else _mm256_maskstore_ps(out, m0, lo[j]);
        if (full) _mm256_storeu_ps(out + 8, hi[j]);
        else if (OW - ow > 8) _mm256_maskstore_ps(out + 8, m1, hi[j]);
    }
}

__attribute__((target("avx2,fma")))
static void forward_avx2(const float *x, int C, int H, int W, const float *w, const float *bias, int relu, int CO,
                         int KH, int KW, int OH, int OW, float *y) {
    const int taps = C * KH * KW;
    for (int co0 = 0; co0 < CO; co0 += CB) {
        const int cb = CO - co0 < CB ? CO - co0 : CB;
        for (int oh = 0; oh < OH; oh++) {
            int ow = 0;
            for (; ow + 16 <= OW; ow += 16)
                forward_chunk_avx2(x, C, H, W, w, bias, relu, co0, cb, taps, KH, KW, OH, OW, oh, ow, 1, y);
            if (ow < OW) forward_chunk_avx2(x, C, H, W, w, bias, relu, co0, cb, taps, KH, KW, OH, OW, oh, ow, 0, y);
        }
    }
}

enum { CB2 = 4, KB2 = 2 };  // the AVX2 weight gradient's block: 8 accumulators, 4 gradients and a load in 16 ymm

__attribute__((target("avx2,fma")))
static void weight_gradient_avx2(const float *x, int C, int H, int W, const float *dy, int CO, int KH, int KW,
                                 int OH, int OW, float *dw) {
    for (int co0 = 0; co0 < CO; co0 += CB2) {
        const int cb = CO - co0 < CB2 ? CO - co0 : CB2;
        for (int ci = 0; ci < C; ci++)
            for (int kh = 0; kh < KH; kh++)
                for (int kw0 = 0; kw0 < KW; kw0 += KB2) {
                    const int kb = KW - kw0 < KB2 ? KW - kw0 : KB2;
                    __m256 acc[CB2][KB2];
                    for (int j = 0; j < CB2; j++)
                        for (int k = 0; k < KB2; k++) acc[j][k] = _mm256_setzero_ps();
                    for (int oh = 0; oh < OH; oh++) {
                        const float *row = x + ((size_t)ci * H + oh + kh) * W + kw0;
                        int ow = 0;
                        for (; ow + 8 <= OW; ow += 8) {  // whole chunks: plain loads (masked ones are slow on AMD)
                            __m256 g[CB2];
                            for (int j = 0; j < CB2; j++)
                                g[j] = j < cb ? _mm256_loadu_ps(dy + ((size_t)(co0 + j) * OH + oh) * OW + ow) : _mm256_setzero_ps();
                            for (int k = 0; k < KB2; k++) {
                                if (k >= kb) break;
                                const __m256 v = _mm256_loadu_ps(row + ow + k);
                                for (int j = 0; j < CB2; j++) acc[j][k] = _mm256_fmadd_ps(g[j], v, acc[j][k]);
                            }
                        }
                        if (ow < OW) {
                            const __m256i m = cnn_lanes_avx2(OW - ow);
                            __m256 g[CB2];
                            for (int j = 0; j < CB2; j++)
                                g[j] = j < cb ? _mm256_maskload_ps(dy + ((size_t)(co0 + j) * OH + oh) * OW + ow, m) : _mm256_setzero_ps();
                            for (int k = 0; k < KB2; k++) {
                                if (k >= kb) break;
                                const __m256 v = _mm256_maskload_ps(row + ow + k, m);
                                for (int j = 0; j < CB2; j++) acc[j][k] = _mm256_fmadd_ps(g[j], v, acc[j][k]);
                            }
                        }
                    }
                    for (int j = 0; j < cb; j++)
                        for (int k = 0; k < kb; k++) {
                            // The 8 lanes summed: halves, then pairs, then the last two.
                            __m128 sum = _mm_add_ps(_mm256_castps256_ps128(acc[j][k]), _mm256_extractf128_ps(acc[j][k], 1));
                            sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
                            sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
                            dw[(((size_t)(co0 + j) * C + ci) * KH + kh) * KW + kw0 + k] += _mm_cvtss_f32(sum);
                        }
                }
    }
}
#endif

int cnn_conv2d_direct_available(int C, int KH, int KW, int OW) {
    return cnn_conv2d_direct_available_isa(cnn_isa_active(), C, KH, KW, OW);
}

int cnn_conv2d_direct_available_isa(cnn_isa isa, int C, int KH, int KW, int OW) {
#if defined(__x86_64__)
    return (isa == CNN_ISA_AVX512 || isa == CNN_ISA_AVX2) && isa <= cnn_isa_detected() && C * KH * KW <= 75 && OW >= 8;
#else
    (void)isa; (void)C; (void)KH; (void)KW; (void)OW;
    return 0;
#endif
}

void cnn_conv2d_direct_forward(const float *x, int C, int H, int W, const float *w, const float *bias, int relu, int CO,
                               int KH, int KW, int OH, int OW, float *y) {
    cnn_conv2d_direct_forward_isa(cnn_isa_active(), x, C, H, W, w, bias, relu, CO, KH, KW, OH, OW, y);
}

void cnn_conv2d_direct_forward_isa(cnn_isa isa, const float *x, int C, int H, int W, const float *w, const float *bias,
                                   int relu, int CO, int KH, int KW, int OH, int OW, float *y) {
#if defined(__x86_64__)
    if (isa == CNN_ISA_AVX512 && isa <= cnn_isa_detected()) return forward_avx512(x, C, H, W, w, bias, relu, CO, KH, KW, OH, OW, y);
    if (isa == CNN_ISA_AVX2 && isa <= cnn_isa_detected()) return forward_avx2(x, C, H, W, w, bias, relu, CO, KH, KW, OH, OW, y);
#endif
    (void)isa;
    cnn_conv2d_naive(x, C, H, W, w, bias, CO, 1, KH, KW, 1, 1, 0, 0, OH, OW, y);
    if (relu) cnn_relu_forward(y, y, (size_t)CO * OH * OW);
}

void cnn_conv2d_direct_weight_gradient(const float *x, int C, int H, int W, const float *dy, int CO, int KH, int KW,
                                       int OH, int OW, float *dw) {
    cnn_conv2d_direct_weight_gradient_isa(cnn_isa_active(), x, C, H, W, dy, CO, KH, KW, OH, OW, dw);
}

void cnn_conv2d_direct_weight_gradient_isa(cnn_isa isa, const float *x, int C, int H, int W, const float *dy, int CO,
                                           int KH, int KW, int OH, int OW, float *dw) {
#if defined(__x86_64__)
    if (isa == CNN_ISA_AVX512 && isa <= cnn_isa_detected()) return weight_gradient_avx512(x, C, H, W, dy, CO, KH, KW, OH, OW, dw);
    if (isa == CNN_ISA_AVX2 && isa <= cnn_isa_detected()) return weight_gradient_avx2(x, C, H, W, dy, CO, KH, KW, OH, OW, dw);
#endif
    (void)isa;
    cnn_conv2d_weight_gradient_naive(x, C, H, W, dy, CO, 1, KH, KW, 1, 1, 0, 0, OH, OW, dw);
}

void cnn_conv2d_weight_gradient_naive(const float *x, int C, int H, int W, const float *dy, int CO, int groups,
                                      int KH, int KW, int SH, int SW, int PH, int PW, int OH, int OW, float *dw) {
    int cg = C / groups, cog = CO / groups;
    for (int co = 0; co < CO; co++) {
        int g = co / cog;
        for (int ci = 0; ci < cg; ci++)
            for (int kh = 0; kh < KH; kh++)
                for (int kw = 0; kw < KW; kw++) {
                    double sum = 0;
                    for (int oh = 0; oh < OH; oh++)
                        for (int ow = 0; ow < OW; ow++) {
                            int ih = oh * SH - PH + kh, iw = ow * SW - PW + kw;
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                            sum += (double)dy[((size_t)co * OH + oh) * OW + ow] * x[((size_t)(g * cg + ci) * H + ih) * W + iw];
                        }
                    dw[(((size_t)co * cg + ci) * KH + kh) * KW + kw] += (float)sum;
                }
    }
}
