// Batch normalisation's per-channel loops, with an optional fused ReLU, each reduction with its naive twin.
// Legend: x[N, C, P] row-major, c the channel, m = N * P values per channel; xhat = (x - mean) * inv.
// The reductions keep 16 float partial sums per row (written as lanes, so that the compiler vectorises them without
// reassociating anything) and add the rows' totals in double; the naive twins add every value in double.
#include "cnn_batchnorm.h"
#include <stddef.h>

enum { LANES = 16 };

/// The sum of one row, and the sum of its squared deviations from `shift`.
static void row_sums(const float *restrict row, int P, float shift, double *sum, double *squares) {
    float s[LANES] = {0}, q[LANES] = {0};
    int i = 0;
    for (; i + LANES <= P; i += LANES)
        for (int l = 0; l < LANES; l++) {
            float v = row[i + l], d = v - shift;
            s[l] += v;
            q[l] += d * d;
        }
    double ts = 0, tq = 0;
    for (; i < P; i++) {
        float d = row[i] - shift;
        ts += row[i];
        tq += (double)d * d;
    }
    for (int l = 0; l < LANES; l++) { ts += s[l]; tq += q[l]; }
    *sum += ts;
    *squares += tq;
}

void cnn_channel_moments(const float *x, int N, int C, int P, int c, double *mean, double *variance) {
    // A shift near the mean (the first value) keeps the squares' sum accurate in one pass over float lanes; the mean
    // is then exact in double and the variance is corrected for the shift: E[(x-s)^2] - (mean-s)^2.
    const float shift = x[(size_t)c * P];
    double sum = 0, squares = 0;
    for (int n = 0; n < N; n++) row_sums(x + ((size_t)n * C + c) * P, P, shift, &sum, &squares);
    const double m = (double)N * P, mu = sum / m, offset = mu - shift;
    double var = squares / m - offset * offset;
    *mean = mu;
    *variance = var > 0 ? var : 0;
}

void cnn_channel_moments_naive(const float *x, int N, int C, int P, int c, double *mean, double *variance) {
    double sum = 0, squares = 0;
    for (int n = 0; n < N; n++)
        for (int i = 0; i < P; i++) sum += x[((size_t)n * C + c) * P + i];
    const double m = (double)N * P, mu = sum / m;
    for (int n = 0; n < N; n++)
        for (int i = 0; i < P; i++) {
            double d = x[((size_t)n * C + c) * P + i] - mu;
            squares += d * d;
        }
    *mean = mu;
    *variance = squares / m;
}

void cnn_channel_affine(const float *x, float *y, int N, int C, int P, int c, float a, float b, int relu) {
    for (int n = 0; n < N; n++) {
        const float *restrict row = x + ((size_t)n * C + c) * P;
        float *restrict out = y + ((size_t)n * C + c) * P;
        if (relu)
            for (int i = 0; i < P; i++) {
                float v = row[i] * a + b;
                out[i] = v > 0 ? v : 0;
            }
        else
            for (int i = 0; i < P; i++) out[i] = row[i] * a + b;
    }
}

/// The sums of g and g * xhat over one row; g = dy masked by y > 0 when `masked`.
static inline void gradient_row(const float *restrict row, const float *restrict g, const float *restrict y, int masked,
                                int P, float mean, float inv, double *total, double *weighted) {
    float s[LANES] = {0}, w[LANES] = {0};
    int i = 0;
    if (masked)
        for (; i + LANES <= P; i += LANES)
            for (int l = 0; l < LANES; l++) {
                float r = y[i + l], d = g[i + l];  // both loads unconditional: a vector select, not a branch
                float v = r > 0 ? d : 0.0f;
                s[l] += v;
                w[l] += v * ((row[i + l] - mean) * inv);
            }
    else
        for (; i + LANES <= P; i += LANES)
            for (int l = 0; l < LANES; l++) {
                float v = g[i + l];
                s[l] += v;
                w[l] += v * ((row[i + l] - mean) * inv);
            }
    double ts = 0, tw = 0;
    for (; i < P; i++) {
        float v = masked && !(y[i] > 0) ? 0.0f : g[i];
        ts += v;
        tw += (double)v * ((row[i] - mean) * inv);
    }
    for (int l = 0; l < LANES; l++) { ts += s[l]; tw += w[l]; }
    *total += ts;
    *weighted += tw;
}

void cnn_bn_gradient_sums(const float *x, const float *dy, const float *y, int N, int C, int P, int c, float mean,
                          float inv, double *sum_dy, double *sum_dy_xhat) {
    double total = 0, weighted = 0;
    for (int n = 0; n < N; n++) {
        const size_t offset = ((size_t)n * C + c) * P;
        gradient_row(x + offset, dy + offset, y ? y + offset : x, y != NULL, P, mean, inv, &total, &weighted);
    }
    *sum_dy = total;
    *sum_dy_xhat = weighted;
}

void cnn_bn_gradient_sums_naive(const float *x, const float *dy, const float *y, int N, int C, int P, int c, float mean,
                                float inv, double *sum_dy, double *sum_dy_xhat) {
    double total = 0, weighted = 0;
    for (int n = 0; n < N; n++)
        for (int i = 0; i < P; i++) {
            const size_t k = ((size_t)n * C + c) * P + i;
            double v = y && !(y[k] > 0) ? 0.0 : dy[k];
            total += v;
            weighted += v * (double)((x[k] - mean) * inv);
        }
    *sum_dy = total;
    *sum_dy_xhat = weighted;
}

void cnn_bn_input_gradient(const float *x, const float *dy, const float *y, float *dx, int N, int C, int P, int c,
                           float mean, float inv, float a, float mean_dy, float mean_dy_xhat) {
    for (int n = 0; n < N; n++) {
        const size_t offset = ((size_t)n * C + c) * P;
        const float *restrict row = x + offset, *restrict g = dy + offset;
        float *restrict out = dx + offset;
        if (y) {
            const float *restrict rectified = y + offset;
            for (int i = 0; i < P; i++) {
                float r = rectified[i], d = g[i];  // both loads unconditional: a vector select, not a branch
                float v = r > 0 ? d : 0.0f;
                out[i] = a * (v - mean_dy - (row[i] - mean) * inv * mean_dy_xhat);
            }
        } else {
            for (int i = 0; i < P; i++) out[i] = a * (g[i] - mean_dy - (row[i] - mean) * inv * mean_dy_xhat);
        }
    }
}
