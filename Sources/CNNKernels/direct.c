// Direct convolution for layers with few input taps (LeNet's C1: one channel, 5x5), where lowering to GEMM
// leaves the register tiles mostly empty (M = 6 output channels, K = 25). Stride 1, no padding, one group.
// The output width is vectorised 16 at a time (masked at the edge): one zmm on AVX-512, two ymm on AVX2; up to 6
// output channels share each load. The AVX2 weight gradient blocks 4 channels x 2 kernel columns, which with the
// loads fits its 16 registers (AVX-512's 6 x 4 needs 32).
//
// Legend: C input channels, H x W input, CO output channels, KH x KW kernel, OH x OW output (OH = H - KH + 1).
#include "cnn_kernels.h"
#include "avx2.h"
#include "buffers.h"
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
                            dw[(((size_t)(co0 + j) * C + ci) * KH + kh) * KW + kw0 + k] += cnn_sum_avx2(acc[j][k]);
                        }
                }
    }
}

// ---- Vectorised over output channels (LeNet's conv2: 6 channels in, 5x5, 16 out, 10x10 out) -------------------
// Lowering such a layer writes a column matrix of 150 rows per position and packs it again for a GEMM of only 16
// rows: both passes cost as much as the product. Here the 16 output channels are the vector (two ymm) and DP = 6
// consecutive output positions the register block: per tap, two loads of the weights and six broadcasts of input
// values read where they lie, twelve FMAs, as the GEMM's 6 x 16 micro-kernel does on packed panels.

enum { DP = 6 };

static _Thread_local float *channel_weights;
static _Thread_local size_t channel_weights_capacity;

__attribute__((target("avx2,fma")))
static void forward_channels_avx2(const float *x, int C, int H, int W, const float *w, const float *bias, int relu,
                                  int CO, int KH, int KW, int OH, int OW, float *y) {
    const int taps = C * KH * KW, P = OH * OW, blocks = (CO + 15) / 16;
    // The weights as [block][tap][16 output channels], zeros past CO.
    float *wt = cnn_reserve(&channel_weights, &channel_weights_capacity, (size_t)blocks * taps * 16);
    for (int b = 0; b < blocks; b++)
        for (int t = 0; t < taps; t++)
            for (int j = 0; j < 16; j++) {
                const int co = b * 16 + j;
                wt[((size_t)b * taps + t) * 16 + j] = co < CO ? w[(size_t)co * taps + t] : 0.0f;
            }
    for (int p0 = 0; p0 < P; p0 += DP) {
        const int n = P - p0 < DP ? P - p0 : DP;
        const float *base[DP];  // each position's window's top-left input value (the last one again past n)
        for (int i = 0; i < DP; i++) {
            const int p = p0 + (i < n ? i : n - 1);
            base[i] = x + (size_t)(p / OW) * W + p % OW;
        }
        for (int b = 0; b < blocks; b++) {
            float start[16] __attribute__((aligned(32)));
            for (int j = 0; j < 16; j++) start[j] = bias && b * 16 + j < CO ? bias[b * 16 + j] : 0.0f;
            __m256 acc[DP][2];
#pragma clang loop unroll(full)
            for (int i = 0; i < DP; i++) acc[i][0] = _mm256_load_ps(start), acc[i][1] = _mm256_load_ps(start + 8);
            const float *wb = wt + (size_t)b * taps * 16;
            for (int ci = 0; ci < C; ci++)
                for (int kh = 0; kh < KH; kh++) {
                    const size_t row = ((size_t)ci * H + kh) * W;
                    for (int kw = 0; kw < KW; kw++, wb += 16) {
                        const __m256 w0 = _mm256_load_ps(wb), w1 = _mm256_load_ps(wb + 8);
#pragma clang loop unroll(full)
                        for (int i = 0; i < DP; i++) {
                            const __m256 v = _mm256_broadcast_ss(base[i] + row + kw);
                            acc[i][0] = _mm256_fmadd_ps(v, w0, acc[i][0]);
                            acc[i][1] = _mm256_fmadd_ps(v, w1, acc[i][1]);
                        }
                    }
                }
            // Positions x channels to channels x positions, through a small tile.
            float tile[DP][16] __attribute__((aligned(32)));
#pragma clang loop unroll(full)
            for (int i = 0; i < DP; i++) {
                if (relu) {
                    acc[i][0] = _mm256_max_ps(acc[i][0], _mm256_setzero_ps());
                    acc[i][1] = _mm256_max_ps(acc[i][1], _mm256_setzero_ps());
                }
                _mm256_store_ps(tile[i], acc[i][0]);
                _mm256_store_ps(tile[i] + 8, acc[i][1]);
            }
            for (int j = 0; j < 16 && b * 16 + j < CO; j++) {
                float *out = y + (size_t)(b * 16 + j) * P + p0;
                for (int i = 0; i < n; i++) out[i] = tile[i][j];
            }
        }
    }
}

static _Thread_local float *channel_gradients;
static _Thread_local size_t channel_gradients_capacity;

/// dw[CO,C,KH,KW] += sum over N images of the correlation of dy with x, 16 output channels (the vector) by DP taps
/// (the register block) at a time: per position, two loads of dY transposed to [position][channel] and DP broadcasts
/// of input values read where they lie.
__attribute__((target("avx2,fma")))
static void weight_gradient_channels_avx2(const float *x, int N, int C, int H, int W, const float *dy, int CO, int KH,
                                          int KW, int OH, int OW, float *dw) {
    const int taps = C * KH * KW, P = OH * OW, blocks = (CO + 15) / 16, tap_blocks = (taps + DP - 1) / DP;
    // Per block of channels: dY^T [P][16] (zeros past CO), then dW^T [taps padded to DP][16].
    const size_t gradient_size = (size_t)P * 16, sums_size = (size_t)tap_blocks * DP * 16;
    float *g = cnn_reserve(&channel_gradients, &channel_gradients_capacity, gradient_size + sums_size + (size_t)taps);
    float *sums = g + gradient_size;
    int *offsets = (int *)(sums + sums_size);  // each tap's offset in the image: (ci * H + kh) * W + kw
    for (int ci = 0, t = 0; ci < C; ci++)
        for (int kh = 0; kh < KH; kh++)
            for (int kw = 0; kw < KW; kw++) offsets[t++] = (ci * H + kh) * W + kw;
    for (int b = 0; b < blocks; b++) {
        memset(sums, 0, sums_size * sizeof(float));
        for (int image = 0; image < N; image++) {
            const float *xi = x + (size_t)image * C * H * W, *dyi = dy + (size_t)image * CO * P;
            for (int p = 0; p < P; p++)
                for (int j = 0; j < 16; j++) g[(size_t)p * 16 + j] = b * 16 + j < CO ? dyi[(size_t)(b * 16 + j) * P + p] : 0.0f;
            for (int tb = 0; tb < tap_blocks; tb++) {
                const float *tap[DP];  // the block's taps (the last one again past `taps`)
                for (int i = 0; i < DP; i++) tap[i] = xi + offsets[tb * DP + i < taps ? tb * DP + i : taps - 1];
                __m256 acc[DP][2];
#pragma clang loop unroll(full)
                for (int i = 0; i < DP; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
                for (int oh = 0, p = 0; oh < OH; oh++)
                    for (int ow = 0; ow < OW; ow++, p++) {
                        const int at = oh * W + ow;
                        const __m256 g0 = _mm256_load_ps(g + (size_t)p * 16), g1 = _mm256_load_ps(g + (size_t)p * 16 + 8);
#pragma clang loop unroll(full)
                        for (int i = 0; i < DP; i++) {
                            const __m256 v = _mm256_broadcast_ss(tap[i] + at);
                            acc[i][0] = _mm256_fmadd_ps(v, g0, acc[i][0]);
                            acc[i][1] = _mm256_fmadd_ps(v, g1, acc[i][1]);
                        }
                    }
                float *s = sums + (size_t)tb * DP * 16;
#pragma clang loop unroll(full)
                for (int i = 0; i < DP; i++) {
                    _mm256_store_ps(s + i * 16, _mm256_add_ps(_mm256_load_ps(s + i * 16), acc[i][0]));
                    _mm256_store_ps(s + i * 16 + 8, _mm256_add_ps(_mm256_load_ps(s + i * 16 + 8), acc[i][1]));
                }
            }
        }
        for (int j = 0; j < 16 && b * 16 + j < CO; j++)
            for (int t = 0; t < taps; t++) dw[(size_t)(b * 16 + j) * taps + t] += sums[(size_t)t * 16 + j];
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

void cnn_conv2d_direct_channels_weight_gradient(const float *x, int N, int C, int H, int W, const float *dy, int CO, int KH,
                                                int KW, int OH, int OW, float *dw) {
    cnn_conv2d_direct_channels_weight_gradient_isa(cnn_isa_active(), x, N, C, H, W, dy, CO, KH, KW, OH, OW, dw);
}

void cnn_conv2d_direct_channels_weight_gradient_isa(cnn_isa isa, const float *x, int N, int C, int H, int W, const float *dy,
                                                    int CO, int KH, int KW, int OH, int OW, float *dw) {
#if defined(__x86_64__)
    if (isa >= CNN_ISA_AVX2 && isa <= CNN_ISA_AVX512 && isa <= cnn_isa_detected())
        return weight_gradient_channels_avx2(x, N, C, H, W, dy, CO, KH, KW, OH, OW, dw);
#endif
    (void)isa;
    for (int image = 0; image < N; image++)
        cnn_conv2d_weight_gradient_naive(x + (size_t)image * C * H * W, C, H, W, dy + (size_t)image * CO * OH * OW, CO, 1, KH,
                                         KW, 1, 1, 0, 0, OH, OW, dw);
}

int cnn_conv2d_direct_channels_available(int C, int KH, int KW, int CO) {
    return cnn_conv2d_direct_channels_available_isa(cnn_isa_active(), C, KH, KW, CO);
}

int cnn_conv2d_direct_channels_available_isa(cnn_isa isa, int C, int KH, int KW, int CO) {
    // Where lowering serves badly and Winograd does not apply (fewer than 16 input channels), and the weights of a
    // block (taps x 16 floats) stay within 32 KB of L1. On AVX-512, the lowered path's GEMM is fast enough.
    const int taps = C * KH * KW;
#if defined(__x86_64__)
    return isa == CNN_ISA_AVX2 && isa <= cnn_isa_detected() && C < 16 && taps > 75 && taps <= 512 && CO >= 16;
#else
    (void)isa; (void)taps; (void)CO;
    return 0;
#endif
}

void cnn_conv2d_direct_channels_forward(const float *x, int C, int H, int W, const float *w, const float *bias, int relu,
                                        int CO, int KH, int KW, int OH, int OW, float *y) {
    cnn_conv2d_direct_channels_forward_isa(cnn_isa_active(), x, C, H, W, w, bias, relu, CO, KH, KW, OH, OW, y);
}

void cnn_conv2d_direct_channels_forward_isa(cnn_isa isa, const float *x, int C, int H, int W, const float *w,
                                            const float *bias, int relu, int CO, int KH, int KW, int OH, int OW, float *y) {
#if defined(__x86_64__)
    if (isa >= CNN_ISA_AVX2 && isa <= CNN_ISA_AVX512 && isa <= cnn_isa_detected())
        return forward_channels_avx2(x, C, H, W, w, bias, relu, CO, KH, KW, OH, OW, y);
#endif
    (void)isa;
    cnn_conv2d_naive(x, C, H, W, w, bias, CO, 1, KH, KW, 1, 1, 0, 0, OH, OW, y);
    if (relu) cnn_relu_forward(y, y, (size_t)CO * OH * OW);
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
