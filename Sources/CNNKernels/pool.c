// Max and average pooling over planes (a plane is one channel of one image), overlapping windows allowed.
// Legend: H x W input, KH x KW window, SH/SW stride, PH/PW top/left padding, OH x OW output.
#include "cnn_kernels.h"
#include <float.h>
#include <string.h>

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

void cnn_maxpool_forward(const float *x, int planes, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                         int OH, int OW, float *y, int32_t *argmax) {
    int two_by_two = KH == 2 && KW == 2 && SH == 2 && SW == 2 && PH == 0 && PW == 0 && 2 * OH <= H && 2 * OW <= W;
    if (two_by_two && !argmax)
        maxpool_2x2_values(x, planes, H, W, OH, OW, y);
    else if (two_by_two)
        maxpool_2x2(x, planes, H, W, OH, OW, y, argmax);
    else
        cnn_maxpool_forward_naive(x, planes, H, W, KH, KW, SH, SW, PH, PW, OH, OW, y, argmax);
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
                float best = -FLT_MAX;
                int32_t where = h0 * W + w0;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++) {
                        float v = x[h * W + w];
                        if (v > best || v != v) { best = v; where = h * W + w; if (v != v) goto done; }
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
