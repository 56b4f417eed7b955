// Local response normalisation across channels: forward and backward, each with its naive twin.
// Legend: N images, C channels, P positions per plane (H * W), n window size, a the coefficient of the window sum
// (alpha / n or alpha), b beta, k the additive constant. Window of channel c: [c - n/2, c + (n-1)/2].
// The fast loops work on whole planes, so that the innermost loop runs over P contiguous positions and vectorises,
// and compute b = 0.75 and b = 0.5 with square roots instead of powf.
#include "cnn_lrn.h"
#include <math.h>
#include <stddef.h>

#if defined(__has_builtin)
#if __has_builtin(__builtin_elementwise_sqrt)
// Without errno handling, so that the loops below vectorise (the argument is k + a * sum >= k > 0 here).
#define LRN_SQRT(v) __builtin_elementwise_sqrt(v)
#endif
#endif
#ifndef LRN_SQRT
#define LRN_SQRT(v) sqrtf(v)
#endif

/// out[i] = x[i] * s[i]^-b over one plane. b = 0.75 (every network that uses LRN) and b = 0.5 avoid powf.
static void apply_power(const float *restrict x, const float *restrict s, float *restrict out, int P, float b) {
    if (b == 0.75f) {
        for (int i = 0; i < P; i++) {
            float r = 1.0f / LRN_SQRT(s[i]);     // s^-1/2
            out[i] = x[i] * r * LRN_SQRT(r);     // s^-1/2 * s^-1/4
        }
    } else if (b == 0.5f) {
        for (int i = 0; i < P; i++) out[i] = x[i] / LRN_SQRT(s[i]);
    } else {
        for (int i = 0; i < P; i++) out[i] = x[i] * powf(s[i], -b);
    }
}

void cnn_lrn_forward(const float *x, int N, int C, int P, int n, float a, float b, float k, float *y, float *scale) {
    for (int image = 0; image < N; image++) {
        const size_t base = (size_t)image * C * P;
        const float *xi = x + base;
        float *yi = y + base, *si = scale + base;
        for (int c = 0; c < C; c++) {
            // Each window summed afresh, plane by plane. NOTE: not slid from channel to channel as Caffe does: the
            // sliding sum loses up to 1e-4 of a small sum after a large channel leaves the window (n is 5 in every
            // network that uses LRN, so the direct sum is only n multiply-adds per element).
            int lo = c - n / 2, hi = c + (n - 1) / 2;
            if (lo < 0) lo = 0;
            if (hi > C - 1) hi = C - 1;
            float *restrict s = si + (size_t)c * P;
            for (int i = 0; i < P; i++) s[i] = 0;
            for (int j = lo; j <= hi; j++) {
                const float *restrict xj = xi + (size_t)j * P;
                for (int i = 0; i < P; i++) s[i] += xj[i] * xj[i];
            }
            for (int i = 0; i < P; i++) s[i] = k + a * s[i];
            apply_power(xi + (size_t)c * P, s, yi + (size_t)c * P, P, b);
        }
    }
}

void cnn_lrn_forward_naive(const float *x, int N, int C, int P, int n, float a, float b, float k, float *y, float *scale) {
    for (int image = 0; image < N; image++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < P; i++) {
                double sum = 0;
                for (int j = c - n / 2; j <= c + (n - 1) / 2; j++) {
                    if (j < 0 || j >= C) continue;
                    double v = x[((size_t)image * C + j) * P + i];
                    sum += v * v;
                }
                const size_t at = ((size_t)image * C + c) * P + i;
                double s = (double)k + (double)a * sum;
                scale[at] = (float)s;
                y[at] = (float)(x[at] * pow(s, -(double)b));
            }
}

/// dx[i] = dy[i] * s[i]^-b + factor * x[i] * dx[i] over one plane, where dx holds the window sums on entry.
static void finish_gradient(const float *restrict dy, const float *restrict s, const float *restrict x,
                            float *restrict dx, int P, float b, float factor) {
    if (b == 0.75f) {
        for (int i = 0; i < P; i++) {
            float r = 1.0f / LRN_SQRT(s[i]);
            dx[i] = dy[i] * r * LRN_SQRT(r) + factor * x[i] * dx[i];
        }
    } else if (b == 0.5f) {
        for (int i = 0; i < P; i++) dx[i] = dy[i] / LRN_SQRT(s[i]) + factor * x[i] * dx[i];
    } else {
        for (int i = 0; i < P; i++) dx[i] = dy[i] * powf(s[i], -b) + factor * x[i] * dx[i];
    }
}

void cnn_lrn_backward(const float *x, const float *y, const float *scale, const float *dy, int N, int C, int P, int n,
                      float a, float b, float *dx) {
    const float factor = -2.0f * a * b;
    for (int image = 0; image < N; image++) {
        const size_t base = (size_t)image * C * P;
        const float *xi = x + base, *yi = y + base, *si = scale + base, *gi = dy + base;
        float *dxi = dx + base;
        for (int j = 0; j < C; j++) {
            // Channel c's window contains j exactly when c is in [j - (n-1)/2, j + n/2]: the transposed window.
            // dx[j] first collects sum t[c], t[c] = dy[c] * y[c] / s[c] (recomputed per window: no scratch needed).
            int lo = j - (n - 1) / 2, hi = j + n / 2;
            if (lo < 0) lo = 0;
            if (hi > C - 1) hi = C - 1;
            float *restrict sum = dxi + (size_t)j * P;
            for (int i = 0; i < P; i++) sum[i] = 0;
            for (int c = lo; c <= hi; c++) {
                const size_t o = (size_t)c * P;
                const float *restrict g = gi + o, *restrict yc = yi + o, *restrict s = si + o;
                for (int i = 0; i < P; i++) sum[i] += g[i] * yc[i] / s[i];
            }
            const size_t o = (size_t)j * P;
            finish_gradient(gi + o, si + o, xi + o, sum, P, b, factor);
        }
    }
}

void cnn_lrn_backward_naive(const float *x, const float *y, const float *scale, const float *dy, int N, int C, int P,
                            int n, float a, float b, float *dx) {
    for (int image = 0; image < N; image++)
        for (int j = 0; j < C; j++)
            for (int i = 0; i < P; i++) {
                const size_t at = ((size_t)image * C + j) * P + i;
                double sum = 0;
                for (int c = j - (n - 1) / 2; c <= j + n / 2; c++) {
                    if (c < 0 || c >= C) continue;
                    const size_t oc = ((size_t)image * C + c) * P + i;
                    sum += (double)dy[oc] * y[oc] / scale[oc];
                }
                dx[at] = (float)(dy[at] * pow(scale[at], -(double)b) - 2.0 * a * b * x[at] * sum);
            }
}
