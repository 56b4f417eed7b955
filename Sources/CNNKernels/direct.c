// Direct convolution for layers with few input taps (LeNet's C1: one channel, 5x5), where lowering to GEMM
// leaves the register tiles mostly empty (M = 6 output channels, K = 25). Stride 1, no padding, one group.
// The output width is vectorised 16 at a time (masked at the edge); up to 6 output channels share each load.
//
// Legend: C input channels, H x W input, CO output channels, KH x KW kernel, OH x OW output (OH = H - KH + 1).
#include "cnn_kernels.h"
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
#endif

int cnn_conv2d_direct_available(int C, int KH, int KW, int OW) {
#if defined(__x86_64__)
    return cnn_isa_active() == CNN_ISA_AVX512 && C * KH * KW <= 75 && OW >= 8;
#else
    (void)C; (void)KH; (void)KW; (void)OW;
    return 0;
#endif
}

void cnn_conv2d_direct_forward(const float *x, int C, int H, int W, const float *w, const float *bias, int relu, int CO,
                               int KH, int KW, int OH, int OW, float *y) {
#if defined(__x86_64__)
    forward_avx512(x, C, H, W, w, bias, relu, CO, KH, KW, OH, OW, y);
#else
    cnn_conv2d_naive(x, C, H, W, w, bias, CO, 1, KH, KW, 1, 1, 0, 0, OH, OW, y);
    if (relu) cnn_relu_forward(y, y, (size_t)CO * OH * OW);
#endif
}

void cnn_conv2d_direct_weight_gradient(const float *x, int C, int H, int W, const float *dy, int CO, int KH, int KW,
                                       int OH, int OW, float *dw) {
#if defined(__x86_64__)
    weight_gradient_avx512(x, C, H, W, dy, CO, KH, KW, OH, OW, dw);
#else
    cnn_conv2d_weight_gradient_naive(x, C, H, W, dy, CO, 1, KH, KW, 1, 1, 0, 0, OH, OW, dw);
#endif
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
