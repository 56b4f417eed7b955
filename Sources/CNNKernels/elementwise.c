// Element-wise kernels: activations, per-channel bias, and the optimizer updates. Written as plain loops over
// `restrict` pointers, branch-free, so that the compiler vectorises them for the baseline instruction set.
//
// Legend: n = element count; planes = N * C; P = elements per plane (H * W); C = channels.
#include <stdint.h>
#include "cnn_kernels.h"
#include <math.h>

void cnn_relu_forward(const float *restrict x, float *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = v > 0 ? v : 0;
    }
}

void cnn_relu_backward(const float *restrict y, const float *restrict dy, float *restrict dx, size_t n) {
    // Both loads unconditional, so the choice is a vector select rather than a branch per element.
    for (size_t i = 0; i < n; i++) {
        float v = y[i], g = dy[i];
        dx[i] = v > 0 ? g : 0;
    }
}

void cnn_relu_mask(const float *restrict y, float *restrict dy, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = y[i], g = dy[i];
        dy[i] = v > 0 ? g : 0;
    }
}

void cnn_add_channel_bias(float *restrict y, const float *restrict bias, int images, int C, int P, int relu) {
    cnn_channel_scale_shift(y, NULL, bias, images, C, P, relu);
}

void cnn_channel_scale_shift(float *restrict y, const float *restrict scale, const float *restrict shift, int images,
                             int C, int P, int relu) {
    if (!scale && !shift && !relu) return;
    for (int n = 0; n < images; n++)
        for (int c = 0; c < C; c++) {
            float *restrict row = y + ((size_t)n * C + c) * P;
            const float a = scale ? scale[c] : 1.0f, b = shift ? shift[c] : 0.0f;
            if (relu)
                for (int i = 0; i < P; i++) {
                    float v = row[i] * a + b;
                    row[i] = v > 0.0f ? v : 0.0f;
                }
            else
                for (int i = 0; i < P; i++) row[i] = row[i] * a + b;
        }
}

void cnn_accumulate_channel_sums(const float *restrict dy, float *restrict sums, int images, int C, int P) {
    if (P == 1) {  // a fully connected layer's bias: rows of C added, which vectorises across the channels
        for (int n = 0; n < images; n++)
            for (int c = 0; c < C; c++) sums[c] += dy[(size_t)n * C + c];
        return;
    }
    for (int n = 0; n < images; n++)
        for (int c = 0; c < C; c++) {
            // 16 running sums, which vectorise (one float sum must keep its order and stays scalar), then the tail.
            const float *restrict row = dy + ((size_t)n * C + c) * P;
            float lanes[16] = {0}, s = 0;
            int i = 0;
            for (; i + 16 <= P; i += 16)
                for (int l = 0; l < 16; l++) lanes[l] += row[i + l];
            for (; i < P; i++) s += row[i];
            for (int l = 0; l < 16; l++) s += lanes[l];
            sums[c] += s;
        }
}

void cnn_add(float *restrict target, const float *restrict source, size_t n) {
    for (size_t i = 0; i < n; i++) target[i] += source[i];
}

int cnn_all_finite(const float *restrict x, size_t n) {
    // A float is NaN or infinite exactly when its exponent bits are all ones. An OR over the masked exponents
    // vectorises (a float comparison reduction would not, without -ffast-math).
    const uint32_t *bits = (const uint32_t *)x;
    uint32_t seen = 0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        uint32_t block = 0;
        for (size_t j = 0; j < 64; j++) block |= ((bits[i + j] & 0x7f800000u) == 0x7f800000u);
        if (block) return 0;
    }
    for (; i < n; i++) seen |= ((bits[i] & 0x7f800000u) == 0x7f800000u);
    return !seen;
}

void cnn_sgd_update(float *restrict w, const float *restrict g, float *restrict velocity, size_t n,
                    float lr, float momentum, float weight_decay, int nesterov) {
    if (!velocity) {
        for (size_t i = 0; i < n; i++) w[i] -= lr * (g[i] + weight_decay * w[i]);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        float grad = g[i] + weight_decay * w[i];
        float v = momentum * velocity[i] + grad;
        velocity[i] = v;
        w[i] -= lr * (nesterov ? grad + momentum * v : v);
    }
}

void cnn_adam_update(float *restrict w, const float *restrict g, float *restrict m, float *restrict v, size_t n,
                     float step_size, float beta1, float beta2, float epsilon, float inverse_sqrt_correction2,
                     float weight_decay) {
    for (size_t i = 0; i < n; i++) {
        float grad = g[i] + weight_decay * w[i];
        float mi = beta1 * m[i] + (1 - beta1) * grad;
        float vi = beta2 * v[i] + (1 - beta2) * grad * grad;
        m[i] = mi;
        v[i] = vi;
        w[i] -= step_size * mi / (sqrtf(vi) * inverse_sqrt_correction2 + epsilon);
    }
}

// ---- Dropout -----------------------------------------------------------------------------------

enum { DROPOUT_LANES = 16 };

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/// 16 xoshiro256** generators in lockstep, the state stored lane-minor (s[word][lane]) so that each step is a few
/// vector instructions; element i takes the top 24 bits of lane i % 16's (i / 16)-th number, as
/// RandomGenerator.nextFloat does.
__attribute__((always_inline)) static inline void dropout_body(const float *restrict x, float *restrict y,
                                                              float *restrict mask, size_t n, float keep,
                                                              const uint64_t *seeds) {
    uint64_t s0[DROPOUT_LANES], s1[DROPOUT_LANES], s2[DROPOUT_LANES], s3[DROPOUT_LANES];
    for (int l = 0; l < DROPOUT_LANES; l++) {  // SplitMix64, as RandomGenerator(seed:) seeds its four words
        uint64_t z = seeds[l], w[4];
        for (int i = 0; i < 4; i++) {
            z += 0x9E3779B97F4A7C15ull;
            uint64_t v = z;
            v = (v ^ (v >> 30)) * 0xBF58476D1CE4E5B9ull;
            v = (v ^ (v >> 27)) * 0x94D049BB133111EBull;
            w[i] = v ^ (v >> 31);
        }
        s0[l] = w[0], s1[l] = w[1], s2[l] = w[2], s3[l] = w[3];
    }
    const float scale = 1.0f / keep;
    for (size_t i0 = 0; i0 < n; i0 += DROPOUT_LANES) {
        float kept[DROPOUT_LANES];
        for (int l = 0; l < DROPOUT_LANES; l++) {
            uint64_t result = rotl64(s1[l] * 5, 7) * 9, t = s1[l] << 17;
            s2[l] ^= s0[l], s3[l] ^= s1[l], s1[l] ^= s2[l], s0[l] ^= s3[l], s2[l] ^= t;
            s3[l] = rotl64(s3[l], 45);
            float u = (float)(uint32_t)(result >> 40) * 0x1p-24f;
            kept[l] = u < keep ? scale : 0.0f;
        }
        if (i0 + DROPOUT_LANES <= n) {
            for (int l = 0; l < DROPOUT_LANES; l++) mask[i0 + l] = kept[l], y[i0 + l] = x[i0 + l] * kept[l];
        } else {
            for (size_t l = 0; i0 + l < n; l++) mask[i0 + l] = kept[l], y[i0 + l] = x[i0 + l] * kept[l];
        }
    }
}

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512dq")))
static void dropout_avx512(const float *restrict x, float *restrict y, float *restrict mask, size_t n, float keep,
                           const uint64_t *seeds) {
    dropout_body(x, y, mask, n, keep, seeds);
}
#endif

static void dropout_portable(const float *restrict x, float *restrict y, float *restrict mask, size_t n, float keep,
                             const uint64_t *seeds) {
    dropout_body(x, y, mask, n, keep, seeds);
}

void cnn_dropout_forward(const float *x, float *y, float *mask, size_t n, float keep, const uint64_t seeds[16]) {
#if defined(__x86_64__)
    if (cnn_isa_active() == CNN_ISA_AVX512) return dropout_avx512(x, y, mask, n, keep, seeds);
#endif
    dropout_portable(x, y, mask, n, keep, seeds);
}

void cnn_multiply(const float *restrict a, const float *restrict b, float *restrict out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}

// ---- Softmax cross-entropy ---------------------------------------------------------------------

/// e^x for x <= about 0 (the arguments here are z - max(z) and z - log-sum-exp), branch-free so that loops of it
/// vectorise: x = k ln 2 + r with |r| <= ln 2 / 2, e^r by Cephes' degree-6 polynomial (about 1 ulp), 2^k built in the
/// exponent bits. Below -87.3 (where e^x is no longer a normal float) the result is 0.
static inline float exp_nonpositive(float x) {
    const float kept = x >= -87.3f ? 1.0f : 0.0f;
    x = x >= -87.3f ? x : -87.3f;
    const float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest, as 1.5 * 2^23 does
    const float r = (x - k * 0.693359375f) + k * 2.12194440e-4f;           // ln 2 = 0.693359375 - 2.12194440e-4
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    union { uint32_t bits; float value; } scale = {.bits = (uint32_t)((int32_t)k + 127) << 23};
    return p * scale.value * kept;
}

enum { SOFTMAX_LANES = 16 };

float cnn_softmax_cross_entropy(const float *restrict logits, const int32_t *restrict labels, int n, int classes,
                                float on, float off, float *restrict gradient) {
    // The row's reductions (maximum, sum of exponentials, dot product with the target) run in 16 lanes, which the
    // compiler vectorises (a single float accumulator would have to keep its order, and stay scalar); the lanes are
    // then combined, and a row's last classes % 16 go to lane 0.
    double total = 0;
    const int whole = classes / SOFTMAX_LANES * SOFTMAX_LANES;
    for (int row = 0; row < n; row++) {
        const float *z = logits + (size_t)row * classes;
        // poison: NaN when a logit is not finite (NaN or infinite), which the clamps below would otherwise hide.
        float maxima[SOFTMAX_LANES], poisons[SOFTMAX_LANES], sums[SOFTMAX_LANES], dots[SOFTMAX_LANES];
        for (int l = 0; l < SOFTMAX_LANES; l++) maxima[l] = -INFINITY, poisons[l] = 0, sums[l] = 0, dots[l] = 0;
        for (int j = 0; j < whole; j += SOFTMAX_LANES)
            for (int l = 0; l < SOFTMAX_LANES; l++) {
                float v = z[j + l];
                maxima[l] = v > maxima[l] ? v : maxima[l];
                poisons[l] += v - v;
            }
        for (int j = whole; j < classes; j++) maxima[0] = z[j] > maxima[0] ? z[j] : maxima[0], poisons[0] += z[j] - z[j];
        float maximum = maxima[0], poison = poisons[0];
        for (int l = 1; l < SOFTMAX_LANES; l++) maximum = maxima[l] > maximum ? maxima[l] : maximum, poison += poisons[l];

        for (int j = 0; j < whole; j += SOFTMAX_LANES)
            for (int l = 0; l < SOFTMAX_LANES; l++) sums[l] += exp_nonpositive(z[j + l] - maximum);
        for (int j = whole; j < classes; j++) sums[0] += exp_nonpositive(z[j] - maximum);
        float sum = 0;
        for (int l = 0; l < SOFTMAX_LANES; l++) sum += sums[l];
        const float log_sum = maximum + logf(sum);

        // Cross-entropy against the target (`on` at the label, `off` elsewhere): -sum_j target_j (z_j - log_sum).
        for (int j = 0; j < whole; j += SOFTMAX_LANES)
            for (int l = 0; l < SOFTMAX_LANES; l++) dots[l] += z[j + l] - log_sum;
        for (int j = whole; j < classes; j++) dots[0] += z[j] - log_sum;
        float dot = 0;
        for (int l = 0; l < SOFTMAX_LANES; l++) dot += dots[l];
        const int label = labels[row], valid = label >= 0 && label < classes;  // another label gives no class `on`
        total -= (double)(off * dot + (valid ? (on - off) * (z[label] - log_sum) : 0)) - (double)poison;
        if (gradient) {
            float *g = gradient + (size_t)row * classes;
            const float scale = 1.0f / (float)n;
            for (int j = 0; j < classes; j++) g[j] = (exp_nonpositive(z[j] - log_sum) - off) * scale + poison;
            if (valid) g[label] -= (on - off) * scale;
        }
    }
    return (float)total;
}
