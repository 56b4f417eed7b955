// Every kernel besides the GEMM against its naive twin (or a plain loop), on the shapes and with the tolerances of the
// Swift tests (KernelTests, FusionTests.batchNormKernels, NewLayerKernelTests.lrn): built by check-kernels.sh for
// aarch64 and run under qemu-aarch64, where the kernels take their portable C paths, compiled with arm64's FMA
// contraction. It builds and passes natively too (on x86 the fast paths run, and each instruction set the CPU has is
// tried where a kernel takes one). Checks marked "beyond the Swift test" have no Swift counterpart.
//
// The inputs are those of the Swift tests: randomTensor's values, RandomGenerator (xoshiro256** seeded by SplitMix64)
// mapped to [-1, 1), with the same seeds. Where a Swift test demands the same bits, so does this check; the plain
// loops that stand in for a kernel are its arithmetic written out, and give the same bits when compiled alike.
// Each failure is printed; then a line per kernel (with its checks' largest error as a fraction of their tolerance:
// KERNELS_CHECK_VERBOSE=1 names that check) and a summary. Exits 1 on any failure.
#include "cnn_batchnorm.h"
#include "cnn_int8.h"
#include "cnn_kernels.h"
#include "cnn_lrn.h"
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__aarch64__)
#define ARCH "arm64"
#elif defined(__x86_64__)
#define ARCH "x86_64"
#else
#define ARCH "this machine"
#endif

// ---- Checks -------------------------------------------------------------------------------------

static int checks, failures, section_checks, section_failures;
static const char *section = "";
static double section_closest;  // the largest error / tolerance of the section's checks with a tolerance (-1: none)
static char closest_check[384];  // and that check's description (printed with KERNELS_CHECK_VERBOSE=1 in the environment)

static void begin_section(const char *name) {
    section = name;
    section_checks = section_failures = 0;
    section_closest = -1;
}

static void end_section(void) {
    printf("  %-26s %5d checks, %d failed", section, section_checks, section_failures);
    if (section_closest >= 0) printf(" (largest error/tolerance %.2g)", section_closest);
    printf("\n");
    const char *verbose = getenv("KERNELS_CHECK_VERBOSE");
    if (section_closest >= 0 && verbose && *verbose && strcmp(verbose, "0") != 0) printf("    closest: %s\n", closest_check);
}

/// Notes how close the check `what` came to its tolerance (a NaN counts as infinitely far over).
static void note(double error, double tolerance, const char *what) {
    double ratio = error != error ? INFINITY : tolerance > 0 ? error / tolerance : error > 0 ? INFINITY : 0;
    if (ratio > section_closest) {
        section_closest = ratio;
        snprintf(closest_check, sizeof closest_check, "%s (error %.3g, tolerance %.3g)", what, error, tolerance);
    }
}

/// Counts a check; prints it when it fails.
static int expect(int ok, const char *format, ...) {
    checks++, section_checks++;
    if (!ok) {
        failures++, section_failures++;
        va_list arguments;
        va_start(arguments, format);
        printf("FAILED [%s] ", section);
        vprintf(format, arguments);
        printf("\n");
        va_end(arguments);
    }
    return ok;
}

/// error <= bound (or < bound when `strict`), noted; a NaN fails.
static int expect_bound(double error, double bound, int strict, const char *format, ...) {
    char what[384];
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(what, sizeof what, format, arguments);
    va_end(arguments);
    note(error, bound, what);
    return expect(strict ? error < bound : error <= bound, "%s (error %.3g, tolerance %.3g)", what, error, bound);
}

static uint32_t bits_of(float v) {
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

/// A quiet NaN with the given payload, so that two NaNs can be told apart.
static float nan_with(uint32_t payload) {
    uint32_t b = 0x7fc00000u | payload;
    float v;
    memcpy(&v, &b, sizeof v);
    return v;
}

/// got and want hold the same bits, element for element.
static int expect_bits(const float *got, const float *want, size_t n, const char *format, ...) {
    size_t differing = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (bits_of(got[i]) != bits_of(want[i]) && differing++ == 0) first = i;
    char what[256];
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(what, sizeof what, format, arguments);
    va_end(arguments);
    if (differing == 0) return expect(1, "%s", what);
    return expect(0, "%s: %zu of %zu elements differ in their bits, the first at %zu: %.9g (0x%08x), expected %.9g (0x%08x)",
                  what, differing, n, first, got[first], bits_of(got[first]), want[first], bits_of(want[first]));
}

/// The same 32-bit integers.
static int expect_same_indices(const int32_t *got, const int32_t *want, size_t n, const char *format, ...) {
    size_t differing = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i] && differing++ == 0) first = i;
    char what[256];
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(what, sizeof what, format, arguments);
    va_end(arguments);
    if (differing == 0) return expect(1, "%s", what);
    return expect(0, "%s: %zu of %zu indices differ, the first at %zu: %d, expected %d", what, differing, n, first,
                  got[first], want[first]);
}

/// The largest |got - want| / max(1, |want|) (relative) or |got - want| (absolute); a NaN counts as infinite.
/// *where receives its index.
static double largest_error(const float *got, const float *want, size_t n, int relative, size_t *where) {
    double largest = 0;
    *where = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)want[i]);
        if (relative) e /= fmax(1, fabs((double)want[i]));
        if (e != e) e = INFINITY;
        if (e > largest) largest = e, *where = i;
    }
    return largest;
}

/// largest_error(...) < tolerance.
static int expect_close(const float *got, const float *want, size_t n, int relative, double tolerance, const char *format, ...) {
    size_t at;
    double error = largest_error(got, want, n, relative, &at);
    char what[256];
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(what, sizeof what, format, arguments);
    va_end(arguments);
    note(error, tolerance, what);
    if (error < tolerance) return expect(1, "%s", what);
    return expect(0, "%s: %s error %.3g (tolerance %.0e) at element %zu: %.9g, expected %.9g", what,
                  relative ? "relative" : "absolute", error, tolerance, at, n ? got[at] : 0.0f, n ? want[at] : 0.0f);
}

// ---- Values: randomTensor(shape, seed:) of the Swift tests --------------------------------------------------

typedef struct {
    uint64_t s[4];
} generator;

static generator seeded(uint64_t seed) {
    generator g;
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        x += 0x9E3779B97F4A7C15ull;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        g.s[i] = z ^ (z >> 31);
    }
    return g;
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next(generator *g) {
    uint64_t result = rotl(g->s[1] * 5, 7) * 9, t = g->s[1] << 17;
    g->s[2] ^= g->s[0], g->s[3] ^= g->s[1], g->s[1] ^= g->s[2], g->s[0] ^= g->s[3], g->s[2] ^= t;
    g->s[3] = rotl(g->s[3], 45);
    return result;
}

/// Uniform in [0, 1) with 24 bits (RandomGenerator.nextFloat).
static float next_float(generator *g) { return (float)(next(g) >> 40) * 0x1p-24f; }

/// n values uniform in [-1, 1): randomTensor([n], seed: seed).values. (-1 + 2 u is exact, fused or not.)
static float *random_values(size_t n, uint64_t seed) {
    float *v = malloc(sizeof(float) * (n ? n : 1));
    generator g = seeded(seed);
    for (size_t i = 0; i < n; i++) v[i] = -1.0f + 2.0f * next_float(&g);
    return v;
}

static float *filled(size_t n, float value) {
    float *v = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) v[i] = value;
    return v;
}

static float *copy_of(const float *x, size_t n) {
    float *v = malloc(sizeof(float) * (n ? n : 1));
    memcpy(v, x, sizeof(float) * n);
    return v;
}

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}

/// The instruction sets to try with the kernels' _isa entry points: every one this CPU has.
static int instruction_sets(cnn_isa *isas) {
    int count = 0;
    isas[count++] = CNN_ISA_PORTABLE;
#if defined(__x86_64__)
    if (cnn_isa_detected() >= CNN_ISA_AVX2) isas[count++] = CNN_ISA_AVX2;
    if (cnn_isa_detected() >= CNN_ISA_AVX512) isas[count++] = CNN_ISA_AVX512;
#else
    if (cnn_isa_detected() != CNN_ISA_PORTABLE) isas[count++] = cnn_isa_detected();
#endif
    return count;
}

/// Whether the kernels' _isa entry points take their portable loops for `isa` (everything but AVX2 and AVX-512 on x86).
static int portable_path(cnn_isa isa) {
#if defined(__x86_64__)
    return isa == CNN_ISA_PORTABLE;
#else
    (void)isa;
    return 1;
#endif
}

// ---- Winograd (winograd.c): KernelTests.winogradConvolution ----------------------------------------------

/// R = 3 for F(4x4, 3x3), 5 for F(2x2, 5x5): a single partial tile, odd sizes, asymmetric padding, several images
/// per block, a batch whose tiles end mid-group, and several blocks: KernelTests.winogradShapes.
static const struct {
    int r, n, c, h, w, co, top, left, bottom, right;
} winograd_shapes[] = {
    {3, 1, 1, 3, 3, 1, 0, 0, 0, 0},     {3, 2, 3, 9, 7, 5, 1, 1, 1, 1},   {3, 3, 16, 14, 14, 32, 1, 1, 1, 1},
    {3, 1, 17, 6, 11, 19, 1, 0, 0, 1},  {3, 2, 8, 30, 30, 8, 0, 0, 0, 0}, {3, 5, 4, 5, 5, 3, 2, 2, 2, 2},
    {3, 5, 16, 130, 130, 16, 0, 0, 0, 0},  // 5,120 tiles: two blocks (4,096 and 1,024)
    {5, 1, 1, 5, 5, 1, 0, 0, 0, 0},     {5, 2, 3, 9, 8, 5, 2, 2, 2, 2},   {5, 3, 16, 13, 13, 24, 2, 2, 2, 2},
    {5, 1, 6, 7, 10, 7, 1, 3, 2, 0},    {5, 2, 5, 6, 6, 4, 4, 4, 4, 4},
    {5, 3, 16, 94, 94, 16, 0, 0, 0, 0},  // 6,075 tiles: two blocks
};

static void check_winograd(void) {
    begin_section("winograd");
    expect(cnn_winograd_available(3) && cnn_winograd_available(5) && !cnn_winograd_available(7),
           "Winograd serves 3x3 and 5x5 only");
    for (int index = 0; index < (int)(sizeof winograd_shapes / sizeof *winograd_shapes); index++) {
        const int r = winograd_shapes[index].r, N = winograd_shapes[index].n, C = winograd_shapes[index].c;
        const int H = winograd_shapes[index].h, W = winograd_shapes[index].w, CO = winograd_shapes[index].co;
        const int PT = winograd_shapes[index].top, PL = winograd_shapes[index].left;
        const int OH = H + PT + winograd_shapes[index].bottom - r + 1, OW = W + PL + winograd_shapes[index].right - r + 1;
        const size_t in_plane = (size_t)C * H * W, out_plane = (size_t)CO * OH * OW, outputs = N * out_plane;
        char name[96];
        snprintf(name, sizeof name, "case %d (%dx%d, N %d C %d %dx%d CO %d, padding %d %d %d %d)", index, r, r, N, C, H, W, CO,
                 PT, PL, winograd_shapes[index].bottom, winograd_shapes[index].right);
        float *x = random_values(N * in_plane, 41), *w = random_values((size_t)CO * C * r * r, 42), *b = random_values(CO, 43);
        float *u = filled(cnn_winograd_filter_size(C, CO), 0);
        cnn_winograd_transform_filter(w, CO, C, r, 0, u);
        float *fast = filled(outputs, NAN), *two_threads = filled(outputs, NAN);
        cnn_winograd_conv(x, N, C, H, W, u, b, 0, CO, r, PT, PL, OH, OW, fast, 1);
        cnn_winograd_conv(x, N, C, H, W, u, b, 0, CO, r, PT, PL, OH, OW, two_threads, 2);
        expect_bits(two_threads, fast, outputs, "%s: 2 threads against 1", name);
        // With the fused ReLU: exactly max(0, .) of the same values.
        float *rectified = filled(outputs, NAN);
        cnn_winograd_conv(x, N, C, H, W, u, b, 1, CO, r, PT, PL, OH, OW, rectified, 2);
        size_t unequal = 0, first = 0;
        for (size_t i = 0; i < outputs; i++)
            if (!(rectified[i] == (fast[i] > 0 ? fast[i] : 0.0f)) && unequal++ == 0) first = i;
        expect(unequal == 0, "%s: the fused ReLU differs from max(0, .) at %zu of %zu outputs, the first at %zu: %.9g for %.9g", name,
               unequal, outputs, first, rectified[first], fast[first]);
        // The filter prepared once gives the same bits; with a scale and a shift (a folded batch norm), each output
        // channel is y * scale + shift of the unshifted convolution, as cnn_channel_scale_shift computes it.
        float *packed = filled(cnn_winograd_packed_filter_size(C, CO), NAN), *prepared = filled(outputs, NAN);
        cnn_winograd_prepare_filter(w, CO, C, r, 0, packed, 2);
        cnn_winograd_conv_packed(x, N, C, H, W, packed, NULL, b, 0, CO, r, PT, PL, OH, OW, prepared, 2);
        expect_bits(prepared, fast, outputs, "%s: the prepared filter against cnn_winograd_conv", name);
        float *channel_scale = random_values(CO, 44), *channel_shift = random_values(CO, 45);
        float *plain = filled(outputs, NAN), *folded = filled(outputs, NAN);
        cnn_winograd_conv_packed(x, N, C, H, W, packed, NULL, NULL, 0, CO, r, PT, PL, OH, OW, plain, 1);
        cnn_winograd_conv_packed(x, N, C, H, W, packed, channel_scale, channel_shift, 1, CO, r, PT, PL, OH, OW, folded, 1);
        cnn_channel_scale_shift(plain, channel_scale, channel_shift, N, CO, OH * OW, 1);
        expect_bits(folded, plain, outputs, "%s: scale, shift and ReLU folded against cnn_channel_scale_shift after", name);
        if (outputs >= 100) {
            int zero = 0, positive = 0;
            for (size_t i = 0; i < outputs; i++) zero |= folded[i] == 0, positive |= folded[i] > 0;
            expect(zero && positive, "%s: the folded ReLU leaves zeros and positive values", name);
        }
        // Against the naive convolution, image by image.
        float *expected = filled(out_plane, 0);
        for (int image = 0; image < N; image++) {
            cnn_conv2d_naive(x + image * in_plane, C, H, W, w, b, CO, 1, r, r, 1, 1, PT, PL, OH, OW, expected);
            expect_close(fast + image * out_plane, expected, out_plane, 1, 1e-4, "%s, image %d: against cnn_conv2d_naive", name, image);
        }
        // The input gradient: the flipped filter over dY with the complementary padding is the adjoint of the
        // forward (checked as <dY, conv(x)> = <dX(dY), x>, without bias).
        float *dy = random_values(outputs, 44), *flipped = filled(cnn_winograd_filter_size(C, CO), 0);
        cnn_winograd_transform_filter(w, CO, C, r, 1, flipped);
        float *dx = filled(N * in_plane, NAN);
        cnn_winograd_conv(dy, N, CO, OH, OW, flipped, NULL, 0, C, r, r - 1 - PT, r - 1 - PL, H, W, dx, 2);
        float *forward = filled(outputs, 0);
        for (int image = 0; image < N; image++)
            cnn_conv2d_naive(x + image * in_plane, C, H, W, w, NULL, CO, 1, r, r, 1, 1, PT, PL, OH, OW, forward + image * out_plane);
        const double left = dot(dy, forward, outputs), right = dot(dx, x, N * in_plane);
        expect_bound(fabs(left - right), 1e-4 * fmax(1, fabs(left)), 0,
                     "%s: the input gradient is not the adjoint: <dY, conv x> = %.9g, <dX, x> = %.9g", name, left, right);
        // (Beyond the Swift test) the input gradient against the naive convolution of dY with the flipped filter.
        float *w_flipped = filled((size_t)CO * C * r * r, 0), *dx_expected = filled(in_plane, 0);
        for (int o = 0; o < CO; o++)
            for (int c = 0; c < C; c++)
                for (int e = 0; e < r * r; e++)
                    w_flipped[((size_t)c * CO + o) * r * r + e] = w[((size_t)o * C + c) * r * r + r * r - 1 - e];
        // Measured against the largest value, as the weight gradient is: F(2x2, 5x5) loses a little more than the
        // forward's 1e-4 of max(1, |value|) on some of the 400 products summed here (1.1e-4 with the portable GEMM on x86).
        for (int image = 0; image < N; image++) {
            cnn_conv2d_naive(dy + image * out_plane, CO, OH, OW, w_flipped, NULL, C, 1, r, r, 1, 1, r - 1 - PT, r - 1 - PL, H, W,
                             dx_expected);
            double largest = 0, error = 0;
            size_t at = 0;
            for (size_t i = 0; i < in_plane; i++) {
                largest = fmax(largest, fabs(dx_expected[i]));
                double e = fabs((double)dx[image * in_plane + i] - dx_expected[i]);
                if (!(e <= error)) error = e, at = i;
            }
            error /= fmax(1, largest);
            expect_bound(error, 1e-4, 1, "%s, image %d: the input gradient against the naive one, the error divided by max(1, %.6g) "
                         "(element %zu: %.9g, expected %.9g)", name, image, largest, at, dx[image * in_plane + at], dx_expected[at]);
        }
        // The weight gradient, added to what dw holds, against the naive twin image by image.
        float *fast_w = filled((size_t)CO * C * r * r, 0.5f), *slow_w = filled((size_t)CO * C * r * r, 0.5f);
        float *one_thread_w = filled((size_t)CO * C * r * r, 0.5f);
        cnn_winograd_weight_gradient(x, N, C, H, W, dy, CO, r, PT, PL, OH, OW, fast_w, 2);
        for (int image = 0; image < N; image++)
            cnn_conv2d_weight_gradient_naive(x + image * in_plane, C, H, W, dy + image * out_plane, CO, 1, r, r, 1, 1, PT, PL, OH, OW,
                                             slow_w);
        double scale = 0, error = 0;
        size_t at = 0;
        for (size_t i = 0; i < (size_t)CO * C * r * r; i++) {
            scale = fmax(scale, fabs(slow_w[i]));
            double e = fabs((double)fast_w[i] - slow_w[i]);
            if (!(e <= error)) error = e, at = i;
        }
        error /= fmax(1, scale);
        expect_bound(error, 1e-5, 1, "%s: the weight gradient against the naive one, the error divided by max(1, %.6g) "
                     "(element %zu: %.9g, expected %.9g)", name, scale, at, fast_w[at], slow_w[at]);
        // (Beyond the Swift test) the weight gradient on 1 thread: the same bits as on 2.
        cnn_winograd_weight_gradient(x, N, C, H, W, dy, CO, r, PT, PL, OH, OW, one_thread_w, 1);
        expect_bits(one_thread_w, fast_w, (size_t)CO * C * r * r, "%s: weight gradient on 1 thread against 2", name);
        free(x), free(w), free(b), free(u), free(fast), free(two_threads), free(rectified), free(packed), free(prepared);
        free(channel_scale), free(channel_shift), free(plain), free(folded), free(expected), free(dy), free(flipped), free(dx);
        free(forward), free(w_flipped), free(dx_expected), free(fast_w), free(slow_w), free(one_thread_w);
    }
    end_section();
}

// ---- Direct convolution (direct.c): KernelTests.directConvolution -----------------------------------------

/// LeNet's C1, a masked tail (OW = 17), two output-channel blocks (8 = 6 + 2), two kernel-column blocks for the
/// weight gradient (5 = 4 + 1), several input channels.
static const struct {
    int c, h, w, co, kh, kw;
} direct_shapes[] = {{1, 32, 32, 6, 5, 5}, {3, 20, 19, 8, 3, 3}, {2, 12, 40, 13, 4, 5}, {1, 9, 24, 1, 1, 7},
                     {2, 10, 28, 7, 3, 5}, {1, 7, 18, 3, 3, 3}, {1, 8, 14, 2, 2, 3}};

static void check_direct(void) {
    begin_section("direct convolution");
#if defined(__x86_64__)
    expect((cnn_conv2d_direct_available(1, 5, 5, 28) != 0) == (cnn_isa_active() == CNN_ISA_AVX2 || cnn_isa_active() == CNN_ISA_AVX512),
           "x86: the direct kernels serve LeNet's C1 exactly when AVX2 or AVX-512 is active");
#else
    expect(cnn_conv2d_direct_available(1, 5, 5, 28) == 0, "%s: no direct kernels (LeNet's C1 must not be served)", ARCH);
#endif
    cnn_isa isas[4];
    const int isa_count = instruction_sets(isas);
    for (int index = 0; index < (int)(sizeof direct_shapes / sizeof *direct_shapes); index++) {
        const int C = direct_shapes[index].c, H = direct_shapes[index].h, W = direct_shapes[index].w, CO = direct_shapes[index].co;
        const int KH = direct_shapes[index].kh, KW = direct_shapes[index].kw, OH = H - KH + 1, OW = W - KW + 1;
        const size_t outputs = (size_t)CO * OH * OW, weights = (size_t)CO * C * KH * KW;
        float *x = random_values((size_t)C * H * W, 31), *w = random_values(weights, 32), *b = random_values(CO, 33);
        float *dy = random_values(outputs, 34);
        float *slow = filled(outputs, 0), *slow_w = filled(weights, 0.5f);
        cnn_conv2d_naive(x, C, H, W, w, b, CO, 1, KH, KW, 1, 1, 0, 0, OH, OW, slow);
        cnn_conv2d_weight_gradient_naive(x, C, H, W, dy, CO, 1, KH, KW, 1, 1, 0, 0, OH, OW, slow_w);
        for (int k = 0; k < isa_count; k++) {
            const cnn_isa isa = isas[k];
            const char *name = cnn_isa_name(isa);
            const int available = cnn_conv2d_direct_available_isa(isa, C, KH, KW, OW) != 0;
#if defined(__x86_64__)
            // x86: AVX2 and AVX-512 have direct kernels; the portable path falls back to the naive convolution.
            expect(available == (isa != CNN_ISA_PORTABLE), "shape %d, %s: direct kernels available %d", index, name, available);
#else
            expect(!available, "shape %d, %s: direct kernels available on %s", index, name, ARCH);
#endif
            float *fast = filled(outputs, 0), *rectified = filled(outputs, NAN), *fast_w = filled(weights, 0.5f);
            cnn_conv2d_direct_forward_isa(isa, x, C, H, W, w, b, 0, CO, KH, KW, OH, OW, fast);
            expect_close(fast, slow, outputs, 0, 1e-4, "shape %d, %s: forward against cnn_conv2d_naive", index, name);
            // The portable path is the naive convolution itself: the same bits.
            if (portable_path(isa)) expect_bits(fast, slow, outputs, "shape %d, %s: forward against cnn_conv2d_naive", index, name);
            // With the fused ReLU: exactly max(0, .) of the same sums.
            cnn_conv2d_direct_forward_isa(isa, x, C, H, W, w, b, 1, CO, KH, KW, OH, OW, rectified);
            size_t unequal = 0, first = 0;
            int zero = 0, positive = 0;
            for (size_t i = 0; i < outputs; i++) {
                if (!(rectified[i] == (fast[i] > 0 ? fast[i] : 0.0f)) && unequal++ == 0) first = i;
                zero |= rectified[i] == 0, positive |= rectified[i] > 0;
            }
            expect(unequal == 0, "shape %d, %s: the fused ReLU differs from max(0, .) at %zu outputs, the first at %zu: %.9g for %.9g",
                   index, name, unequal, first, rectified[first], fast[first]);
            expect(zero && positive, "shape %d, %s: the fused ReLU leaves zeros and positive values", index, name);
            cnn_conv2d_direct_weight_gradient_isa(isa, x, C, H, W, dy, CO, KH, KW, OH, OW, fast_w);
            expect_close(fast_w, slow_w, weights, 1, 1e-4, "shape %d, %s: weight gradient against cnn_conv2d_weight_gradient_naive",
                         index, name);
            if (portable_path(isa))
                expect_bits(fast_w, slow_w, weights, "shape %d, %s: weight gradient against cnn_conv2d_weight_gradient_naive", index, name);
            free(fast), free(rectified), free(fast_w);
        }
        // The entry points without an instruction set take the active one's path.
        float *active = filled(outputs, NAN), *by_isa = filled(outputs, NAN);
        float *active_w = filled(weights, 0.5f), *by_isa_w = filled(weights, 0.5f);
        cnn_conv2d_direct_forward(x, C, H, W, w, b, 0, CO, KH, KW, OH, OW, active);
        cnn_conv2d_direct_forward_isa(cnn_isa_active(), x, C, H, W, w, b, 0, CO, KH, KW, OH, OW, by_isa);
        expect_bits(active, by_isa, outputs, "shape %d: cnn_conv2d_direct_forward against the active instruction set's", index);
        cnn_conv2d_direct_weight_gradient(x, C, H, W, dy, CO, KH, KW, OH, OW, active_w);
        cnn_conv2d_direct_weight_gradient_isa(cnn_isa_active(), x, C, H, W, dy, CO, KH, KW, OH, OW, by_isa_w);
        expect_bits(active_w, by_isa_w, weights, "shape %d: cnn_conv2d_direct_weight_gradient against the active instruction set's",
                    index);
        free(x), free(w), free(b), free(dy), free(slow), free(slow_w), free(active), free(by_isa), free(active_w), free(by_isa_w);
    }
    end_section();
}

// ---- Direct convolution over output channels (direct.c): KernelTests.directChannelConvolution ----------------

static const struct {
    int c, h, w, co, kh, kw;
} direct_channel_shapes[] = {{6, 14, 14, 16, 5, 5}, {5, 10, 12, 20, 4, 4}, {3, 8, 9, 32, 6, 5}};

static void check_direct_channels(void) {
    begin_section("direct over channels");
    cnn_isa isas[4];
    const int isa_count = instruction_sets(isas);
    for (int index = 0; index < (int)(sizeof direct_channel_shapes / sizeof *direct_channel_shapes); index++) {
        const int C = direct_channel_shapes[index].c, H = direct_channel_shapes[index].h, W = direct_channel_shapes[index].w;
        const int CO = direct_channel_shapes[index].co, KH = direct_channel_shapes[index].kh, KW = direct_channel_shapes[index].kw;
        const int OH = H - KH + 1, OW = W - KW + 1;
        const size_t outputs = (size_t)CO * OH * OW, weights = (size_t)CO * C * KH * KW;
        float *x = random_values((size_t)C * H * W, 35), *w = random_values(weights, 36), *b = random_values(CO, 37);
        float *slow = filled(outputs, 0);
        cnn_conv2d_naive(x, C, H, W, w, b, CO, 1, KH, KW, 1, 1, 0, 0, OH, OW, slow);
        for (int k = 0; k < isa_count; k++) {
            const cnn_isa isa = isas[k];
            const char *name = cnn_isa_name(isa);
            const int available = cnn_conv2d_direct_channels_available_isa(isa, C, KH, KW, CO) != 0;
#if defined(__x86_64__)
            expect(available == (isa == CNN_ISA_AVX2), "shape %d, %s: the channel kernel available %d", index, name, available);
#else
            expect(!available, "shape %d, %s: the channel kernel available on %s", index, name, ARCH);
#endif
            float *fast = filled(outputs, NAN), *rectified = filled(outputs, NAN);
            cnn_conv2d_direct_channels_forward_isa(isa, x, C, H, W, w, b, 0, CO, KH, KW, OH, OW, fast);
            expect_close(fast, slow, outputs, 0, 1e-4, "shape %d, %s: forward against cnn_conv2d_naive", index, name);
            cnn_conv2d_direct_channels_forward_isa(isa, x, C, H, W, w, b, 1, CO, KH, KW, OH, OW, rectified);
            size_t unequal = 0;
            for (size_t i = 0; i < outputs; i++) unequal += !(rectified[i] == (fast[i] > 0 ? fast[i] : 0.0f));
            expect(unequal == 0, "shape %d, %s: the fused ReLU differs from max(0, .) at %zu outputs", index, name, unequal);
            free(fast), free(rectified);
        }
        // The weight gradient over two images, added to what dw holds, against the naive twin image by image.
        const size_t in_plane = (size_t)C * H * W;
        float *xs = random_values(2 * in_plane, 38), *dys = random_values(2 * outputs, 39), *slow_w = filled(weights, 0.5f);
        for (int image = 0; image < 2; image++)
            cnn_conv2d_weight_gradient_naive(xs + image * in_plane, C, H, W, dys + image * outputs, CO, 1, KH, KW, 1, 1, 0, 0, OH,
                                             OW, slow_w);
        for (int k = 0; k < isa_count; k++) {
            float *fast_w = filled(weights, 0.5f);
            cnn_conv2d_direct_channels_weight_gradient_isa(isas[k], xs, 2, C, H, W, dys, CO, KH, KW, OH, OW, fast_w);
            expect_close(fast_w, slow_w, weights, 1, 1e-4, "shape %d, %s: weight gradient against cnn_conv2d_weight_gradient_naive",
                         index, cnn_isa_name(isas[k]));
            free(fast_w);
        }
        free(x), free(w), free(b), free(slow), free(xs), free(dys), free(slow_w);
    }
    end_section();
}

// ---- Convolution lowered to GEMM (im2col.c): KernelTests.convolution and bandedConvolution ---------------------

/// KernelTests.convolutions, the padding worked out (top, left, bottom, right; TensorFlow's "same").
static const struct {
    int c, h, w, co, groups, kh, kw, sh, sw, top, left, bottom, right;
} convolutions[] = {
    {1, 32, 32, 6, 1, 5, 5, 1, 1, 0, 0, 0, 0},    {3, 17, 13, 8, 1, 11, 11, 4, 4, 2, 2, 2, 2},
    {4, 9, 9, 6, 2, 3, 3, 1, 1, 1, 1, 1, 1},      {5, 7, 6, 3, 1, 1, 1, 1, 1, 0, 0, 0, 0},
    {3, 8, 8, 4, 1, 1, 1, 2, 2, 0, 0, 0, 0},      {2, 10, 11, 3, 1, 1, 7, 1, 1, 0, 3, 0, 3},
    {2, 10, 11, 3, 1, 7, 1, 2, 2, 2, 0, 3, 0},    {6, 5, 5, 12, 3, 3, 3, 2, 2, 0, 1, 1, 0},
    {2, 17, 17, 4, 1, 1, 7, 1, 1, 0, 3, 0, 3},    {2, 9, 9, 3, 1, 3, 3, 1, 1, 1, 0, 1, 0},
    {16, 5, 5, 12, 1, 5, 5, 1, 1, 0, 0, 0, 0},    {6, 95, 90, 8, 2, 7, 7, 2, 2, 3, 3, 3, 3},  // bandedConvolution's
};

static void check_lowering(void) {
    begin_section("im2col + GEMM");
    for (int index = 0; index < (int)(sizeof convolutions / sizeof *convolutions); index++) {
        const int C = convolutions[index].c, H = convolutions[index].h, W = convolutions[index].w, CO = convolutions[index].co;
        const int G = convolutions[index].groups, KH = convolutions[index].kh, KW = convolutions[index].kw;
        const int SH = convolutions[index].sh, SW = convolutions[index].sw, PT = convolutions[index].top, PL = convolutions[index].left;
        const int OH = (H + PT + convolutions[index].bottom - KH) / SH + 1, OW = (W + PL + convolutions[index].right - KW) / SW + 1;
        const int cg = C / G, cog = CO / G, K = cg * KH * KW, P = OH * OW;
        const size_t weights = (size_t)CO * K, outputs = (size_t)CO * P, inputs = (size_t)C * H * W;
        float *x = random_values(inputs, 11), *w = random_values(weights, 9), *b = random_values(CO, 10), *dy = random_values(outputs, 15);
        float *col = filled((size_t)C * KH * KW * P, NAN), *y = filled(outputs, NAN), *expected = filled(outputs, 0);
        float *plain = filled(outputs, 0), *dw = filled(weights, 0), *dw_expected = filled(weights, 0), *dx = filled(inputs, 0);
        cnn_im2col(x, C, H, W, KH, KW, SH, SW, PT, PL, OH, OW, col, P);
        for (int g = 0; g < G; g++)
            cnn_sgemm(0, 0, cog, P, K, 1, w + (size_t)g * cog * K, K, col + (size_t)g * K * P, P, 0, y + (size_t)g * cog * P, P);
        cnn_add_channel_bias(y, b, 1, CO, P, 0);
        cnn_conv2d_naive(x, C, H, W, w, b, CO, G, KH, KW, SH, SW, PT, PL, OH, OW, expected);
        expect_close(y, expected, outputs, 0, 1e-4, "case %d: im2col + GEMM + bias against cnn_conv2d_naive", index);
        // The weight gradient dW = dY col^T, against the naive twin.
        for (int g = 0; g < G; g++)
            cnn_sgemm(0, 1, cog, K, P, 1, dy + (size_t)g * cog * P, P, col + (size_t)g * K * P, P, 0, dw + (size_t)g * cog * K, K);
        cnn_conv2d_weight_gradient_naive(x, C, H, W, dy, CO, G, KH, KW, SH, SW, PT, PL, OH, OW, dw_expected);
        expect_close(dw, dw_expected, weights, 1, 1e-4, "case %d: dY col^T against cnn_conv2d_weight_gradient_naive", index);
        // The input gradient col2im(W^T dY) is the adjoint of the convolution: <dY, conv(x)> = <dX, x>.
        for (int g = 0; g < G; g++)
            cnn_sgemm(1, 0, K, P, cog, 1, w + (size_t)g * cog * K, K, dy + (size_t)g * cog * P, P, 0, col + (size_t)g * K * P, P);
        cnn_col2im(col, C, H, W, KH, KW, SH, SW, PT, PL, OH, OW, dx, P);
        cnn_conv2d_naive(x, C, H, W, w, NULL, CO, G, KH, KW, SH, SW, PT, PL, OH, OW, plain);
        const double left = dot(dy, plain, outputs), right = dot(dx, x, inputs);
        expect_bound(fabs(left - right), 1e-4 * fmax(1, fabs(left)), 0,
                     "case %d: col2im is not the adjoint: <dY, conv x> = %.9g, <dX, x> = %.9g", index, left, right);
        free(x), free(w), free(b), free(dy), free(col), free(y), free(expected), free(plain), free(dw), free(dw_expected), free(dx);
    }
    end_section();
}

// ---- Int8 (int8.c): Int8KernelTests -----------------------------------------------------------------------------

/// The int8 lowering and GEMM against the naive int32 convolution, bit for bit, on the convolutions above (each group
/// as a convolution of its own), both lowerings where they apply (the full-width one for stride 1), 1 and 2 threads;
/// the float finish against fmaf of the sums; quantisation against its definition.
static void check_int8(void) {
    begin_section("int8");
    for (int index = 0; index < (int)(sizeof convolutions / sizeof *convolutions); index++) {
        const int C = convolutions[index].c, H = convolutions[index].h, W = convolutions[index].w, CO = convolutions[index].co;
        const int KH = convolutions[index].kh, KW = convolutions[index].kw, SH = convolutions[index].sh, SW = convolutions[index].sw;
        const int PT = convolutions[index].top, PL = convolutions[index].left;
        const int OH = (H + PT + convolutions[index].bottom - KH) / SH + 1, OW = (W + PL + convolutions[index].right - KW) / SW + 1;
        const int K = C * KH * KW, P = OH * OW, Hp = OH + KH - 1, Wp = OW + KW - 1;
        const uint8_t zero_point = index % 2 ? 128 : 3;
        generator g = seeded(100 + index);
        uint8_t *x = malloc((size_t)C * H * W);
        int8_t *w = malloc((size_t)CO * K);
        for (size_t i = 0; i < (size_t)C * H * W; i++) x[i] = i % 11 == 0 ? 255 : (uint8_t)next(&g);
        for (size_t i = 0; i < (size_t)CO * K; i++) w[i] = i % 13 == 0 ? (i % 2 ? -63 : 63) : (int8_t)((int)(next(&g) % 127) - 63);
        int32_t *expected = malloc(sizeof(int32_t) * CO * P), *sums = malloc(sizeof(int32_t) * CO);
        cnn_int8_conv_naive(x, C, H, W, w, CO, KH, KW, SH, SW, PT, PL, OH, OW, zero_point, expected);
        int8_t *packed = malloc(cnn_int8_packed_weights_size(CO, K));
        cnn_int8_pack_weights(w, CO, K, K, packed, sums);
        for (int wide = 0; wide < 2; wide++) {
            if (wide && (SH != 1 || SW != 1)) continue;
            const int columns_count = wide ? OH * Wp : P, ldb = cnn_int8_columns_stride(columns_count);
            uint8_t *columns = malloc(cnn_int8_columns_size(K, ldb));
            memset(columns, 0xA5, cnn_int8_columns_size(K, ldb));
            uint8_t *padded = malloc((size_t)C * Hp * Wp + KW);
            if (wide) {
                cnn_int8_pad(x, C, H, W, PT, PL, Hp, Wp, zero_point, padded);
                cnn_int8_im2col_wide(padded, C, Hp, Wp, KH, KW, OH, columns, ldb, 0, 1 + index % 2);
            } else {
                cnn_int8_im2col(x, C, H, W, KH, KW, SH, SW, PT, PL, OH, OW, zero_point, columns, ldb, 0, 1 + index % 2);
            }
            int32_t *got = malloc(sizeof(int32_t) * CO * columns_count);
            for (int threads = 1; threads <= 2; threads++) {
                cnn_int8_gemm_isa(cnn_isa_active(), CO, columns_count, K, packed, columns, ldb, NULL, NULL, 0, NULL, 0, got,
                                  columns_count, threads);
                int mismatches = 0;
                for (int o = 0; o < CO; o++)
                    for (int j = 0; j < P; j++) {
                        const int column = wide ? j / OW * Wp + j % OW : j;
                        mismatches += got[(size_t)o * columns_count + column] != expected[(size_t)o * P + j];
                    }
                expect(mismatches == 0, "case %d, %s lowering, %d threads: %d of %d sums differ from cnn_int8_conv_naive", index,
                       wide ? "full-width" : "plain", threads, mismatches, CO * P);
            }
            if (!wide) {
                float *scale = random_values(CO, 21), *shift = random_values(CO, 22), *y = filled((size_t)CO * P, NAN);
                for (int o = 0; o < CO; o++) scale[o] *= 1e-3f;
                cnn_int8_gemm(CO, P, K, packed, columns, ldb, scale, shift, 1, y, P, 2);
                float *want = filled((size_t)CO * P, 0);
                for (size_t i = 0; i < (size_t)CO * P; i++) {
                    const float v = fmaf((float)expected[i], scale[i / P], shift[i / P]);
                    want[i] = v > 0 ? v : 0;
                }
                expect_bits(y, want, (size_t)CO * P, "case %d: the float finish is fmaf(sum, scale, shift), ReLU'd", index);
                free(scale), free(shift), free(y), free(want);
            }
            free(columns), free(padded), free(got);
        }
        free(x), free(w), free(expected), free(sums), free(packed);
    }
    // QuantizeLinear: x / scale rounded half to even, plus the zero point, saturated; NaN to 0.
    const float values[] = {0, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 127.4f, 300, -300, INFINITY, -INFINITY, NAN, 1e30f, 3.5f, 0.49999997f};
    const uint8_t want[] = {128, 128, 130, 130, 128, 126, 255, 255, 0, 255, 0, 0, 255, 132, 128};
    uint8_t q[15];
    cnn_quantize_u8(values, 15, 1, 128, q);
    expect(memcmp(q, want, sizeof want) == 0, "cnn_quantize_u8 is ONNX's QuantizeLinear on the Swift test's values");
    end_section();
}

// ---- Pooling (pool.c): KernelTests.separableMaxPoolingEqualsTheGeneralLoop, maxPoolingFastPathEqualsTheGeneralLoop,
// averagePoolingDivisors ----------------------------------------------------------------------------------------

/// Values in quarters (ties, and -0 where a small negative value rounds), as the Swift tests make them.
static float *quarters(size_t n, uint64_t seed) {
    float *v = random_values(n, seed);
    for (size_t i = 0; i < n; i++) v[i] = roundf(v[i] * 4) / 4;
    return v;
}

/// Windows, strides, padding and output sizes on 3 planes of 9 x 37: GoogLeNet's 3x3 stride 1 with padding 1, 3x3
/// stride 2 in ceil mode, a wide 5x5 window with padding 2 and stride 3, 2x1 and 1x1, 3x5 with column padding 2,
/// 3x3 stride 2 with padding 1, 2x2 stride 2; and (beyond the Swift test) 5x5 stride 3 in ceil mode, whose last
/// row of windows reaches past the padding.
static const struct {
    int kh, kw, sh, sw, ph, pw, oh, ow;
} pool_cases[] = {{3, 3, 1, 1, 1, 1, 9, 37}, {3, 3, 2, 2, 0, 0, 4, 18}, {5, 5, 3, 3, 2, 2, 3, 13}, {2, 1, 1, 1, 0, 0, 8, 37},
                  {1, 1, 1, 1, 0, 0, 9, 37}, {3, 5, 1, 1, 0, 2, 7, 37}, {3, 3, 2, 2, 1, 1, 5, 19}, {2, 2, 2, 2, 0, 0, 4, 18},
                  {5, 5, 3, 3, 2, 2, 4, 13}};

static void check_max_pooling(void) {
    begin_section("max pooling");
    enum { PLANES = 3, H = 9, W = 37 };  // rows of 37: two full vectors of 16 (four of 8) and a tail
    float *values = quarters(PLANES * H * W, 22);
    values[7] = NAN;
    values[30] = INFINITY;
    values[31] = -INFINITY;
    // Zeros of both signs that are their windows' maxima: below every other value around them, side by side in a row
    // (+0 then -0, -0 then +0) and one above the other (-0 over +0).
    for (int row = 0; row < 4; row++)
        for (int column = 10; column < 27; column++) values[row * W + column] = -0.75f;
    values[50] = 0.0f;
    values[51] = -0.0f;
    values[60] = -0.0f;
    values[61] = 0.0f;
    values[2 * W + 14] = 0.0f;
    // Without the NaN, inference takes the passes that keep no indices and use plain maxima (the first plane still
    // holds the ties and the infinities).
    float *without_nan = copy_of(values, PLANES * H * W);
    without_nan[7] = 0.5f;
    const float *datasets[2] = {values, without_nan};
    const char *dataset_names[2] = {"with a NaN", "without NaN"};
    cnn_isa isas[4];
    const int isa_count = instruction_sets(isas);
    for (int k = 0; k < (int)(sizeof pool_cases / sizeof *pool_cases); k++) {
        const int KH = pool_cases[k].kh, KW = pool_cases[k].kw, SH = pool_cases[k].sh, SW = pool_cases[k].sw;
        const int PH = pool_cases[k].ph, PW = pool_cases[k].pw, OH = pool_cases[k].oh, OW = pool_cases[k].ow;
        const size_t outputs = (size_t)PLANES * OH * OW;
        float *fast = filled(outputs, 1), *slow = filled(outputs, 1);
        int32_t *fast_index = malloc(sizeof(int32_t) * outputs), *slow_index = malloc(sizeof(int32_t) * outputs);
        for (int d = 0; d < 2; d++) {
            const float *x = datasets[d];
            // Each instruction set's entry point, then (isa -1) cnn_maxpool_forward with the active one.
            for (int s = -1; s < isa_count; s++) {
                const char *name = s < 0 ? "cnn_maxpool_forward" : cnn_isa_name(isas[s]);
                for (size_t i = 0; i < outputs; i++) fast[i] = slow[i] = 1;
                if (s < 0) cnn_maxpool_forward(x, PLANES, H, W, KH, KW, SH, SW, PH, PW, OH, OW, fast, NULL);
                else cnn_maxpool_forward_isa(isas[s], x, PLANES, H, W, KH, KW, SH, SW, PH, PW, OH, OW, fast, NULL);
                cnn_maxpool_forward_naive(x, PLANES, H, W, KH, KW, SH, SW, PH, PW, OH, OW, slow, NULL);
                expect_bits(fast, slow, outputs, "%s, %s: %dx%d stride %dx%d padding %dx%d without indices", name, dataset_names[d], KH, KW,
                            SH, SW, PH, PW);
                // Training keeps the indices: the same ones as the general loop's.
                for (size_t i = 0; i < outputs; i++) fast_index[i] = slow_index[i] = -1;
                if (s < 0) cnn_maxpool_forward(x, PLANES, H, W, KH, KW, SH, SW, PH, PW, OH, OW, fast, fast_index);
                else cnn_maxpool_forward_isa(isas[s], x, PLANES, H, W, KH, KW, SH, SW, PH, PW, OH, OW, fast, fast_index);
                cnn_maxpool_forward_naive(x, PLANES, H, W, KH, KW, SH, SW, PH, PW, OH, OW, slow, slow_index);
                expect_bits(fast, slow, outputs, "%s, %s: %dx%d stride %dx%d padding %dx%d with indices", name, dataset_names[d], KH,
                            KW, SH, SW, PH, PW);
                expect_same_indices(fast_index, slow_index, outputs, "%s, %s: %dx%d stride %dx%d padding %dx%d: the indices", name,
                                    dataset_names[d], KH, KW, SH, SW, PH, PW);
            }
            // The backward pass scatters dY to the indices (adding where windows share their maximum).
            float *dy = random_values(outputs, 23), *dx = filled((size_t)PLANES * H * W, NAN);
            float *expected = filled((size_t)PLANES * H * W, 0);
            cnn_maxpool_forward_naive(x, PLANES, H, W, KH, KW, SH, SW, PH, PW, OH, OW, slow, slow_index);
            cnn_maxpool_backward(dy, slow_index, PLANES, H, W, OH, OW, dx);
            for (int p = 0; p < PLANES; p++)
                for (int i = 0; i < OH * OW; i++) expected[(size_t)p * H * W + slow_index[p * OH * OW + i]] += dy[p * OH * OW + i];
            expect_bits(dx, expected, (size_t)PLANES * H * W, "backward, %s: %dx%d stride %dx%d padding %dx%d", dataset_names[d], KH,
                        KW, SH, SW, PH, PW);
            free(dy), free(dx), free(expected);
        }
        free(fast), free(slow), free(fast_index), free(slow_index);
    }
    free(values), free(without_nan);

    // The 2x2 stride-2 fast path: odd sizes (the last row and column are dropped), ties, NaNs and infinities; and
    // (beyond the Swift test) two NaNs in a window, told apart by their payloads (the first must win), zeros of both
    // signs as a window's maximum, and a window of -infinity. Through cnn_maxpool_forward and each instruction set's.
    for (int variant = 0; variant < 2; variant++) {
        enum { PLANES2 = 3, H2 = 9, W2 = 11, OH2 = H2 / 2, OW2 = W2 / 2 };
        float *x = quarters(PLANES2 * H2 * W2, 21);
        x[5] = NAN;
        x[40] = INFINITY;
        x[41] = -INFINITY;
        x[100] = NAN;
        x[101] = NAN;
        if (variant) {
            const int plane2 = 2 * H2 * W2;
            x[plane2 + 0] = nan_with(1), x[plane2 + 1] = nan_with(2);            // a and b of window (0, 0)
            x[plane2 + 5] = nan_with(3), x[plane2 + W2 + 5] = nan_with(4);       // b and d of window (0, 2)
            for (int i = 2; i < 6; i++) x[plane2 + 2 * W2 + i] = x[plane2 + 3 * W2 + i] = -0.75f;
            x[plane2 + 2 * W2 + 2] = -0.0f, x[plane2 + 2 * W2 + 3] = 0.0f;       // window (1, 1): -0 first
            x[plane2 + 3 * W2 + 4] = -0.0f, x[plane2 + 3 * W2 + 5] = 0.0f;       // window (1, 2): -0 then +0 below
            for (int i = 6; i < 8; i++) x[plane2 + 2 * W2 + i] = x[plane2 + 3 * W2 + i] = -INFINITY;  // window (1, 3)
        }
        const char *data = variant ? "with NaN payloads, signed zeros, -infinity" : "as the Swift test";
        const size_t outputs = (size_t)PLANES2 * OH2 * OW2;
        float fast[PLANES2 * OH2 * OW2], slow[PLANES2 * OH2 * OW2];
        int32_t fast_index[PLANES2 * OH2 * OW2], slow_index[PLANES2 * OH2 * OW2];
        cnn_isa isas[4];
        const int isa_count = instruction_sets(isas);
        cnn_maxpool_forward_naive(x, PLANES2, H2, W2, 2, 2, 2, 2, 0, 0, OH2, OW2, slow, slow_index);
        for (int s = -1; s < isa_count; s++) {
            const char *name = s < 0 ? "cnn_maxpool_forward" : cnn_isa_name(isas[s]);
            memset(fast_index, 0, sizeof fast_index);
            if (s < 0) cnn_maxpool_forward(x, PLANES2, H2, W2, 2, 2, 2, 2, 0, 0, OH2, OW2, fast, fast_index);
            else cnn_maxpool_forward_isa(isas[s], x, PLANES2, H2, W2, 2, 2, 2, 2, 0, 0, OH2, OW2, fast, fast_index);
            expect_same_indices(fast_index, slow_index, outputs, "%s, 2x2 fast path on %dx%d, %s: the indices", name, H2, W2, data);
            size_t unequal = 0;
            int nan = 0;
            for (size_t i = 0; i < outputs; i++) {
                unequal += !(fast[i] == slow[i] || (fast[i] != fast[i] && slow[i] != slow[i]));
                nan |= fast[i] != fast[i];
            }
            expect(unequal == 0, "%s, 2x2 fast path on %dx%d, %s: %zu values differ", name, H2, W2, data, unequal);
            expect(nan, "%s, 2x2 fast path on %dx%d, %s: a NaN in a window must win", name, H2, W2, data);
            expect_bits(fast, slow, outputs, "%s, 2x2 fast path on %dx%d, %s, with indices", name, H2, W2, data);
            for (size_t i = 0; i < outputs; i++) fast[i] = 1;
            if (s < 0) cnn_maxpool_forward(x, PLANES2, H2, W2, 2, 2, 2, 2, 0, 0, OH2, OW2, fast, NULL);
            else cnn_maxpool_forward_isa(isas[s], x, PLANES2, H2, W2, 2, 2, 2, 2, 0, 0, OH2, OW2, fast, NULL);
            expect_bits(fast, slow, outputs, "%s, 2x2 fast path on %dx%d, %s, without indices", name, H2, W2, data);
        }
        if (variant) {
            // The naive loop itself, on the windows made for it: the first NaN, the first of the zeros, -infinity.
            const int at = 2 * OH2 * OW2;
            expect(bits_of(slow[at]) == bits_of(nan_with(1)) && slow_index[at] == 0 &&
                       bits_of(slow[at + 2]) == bits_of(nan_with(3)) && slow_index[at + 2] == 5 &&
                       bits_of(slow[at + OW2 + 1]) == 0x80000000u && slow_index[at + OW2 + 1] == 2 * W2 + 2 &&
                       bits_of(slow[at + OW2 + 2]) == 0x80000000u && slow_index[at + OW2 + 2] == 3 * W2 + 4 &&
                       slow[at + OW2 + 3] == -INFINITY && slow_index[at + OW2 + 3] == 2 * W2 + 6,
                   "the general loop's choices on the windows made for it");
        }
        free(x);
    }
    end_section();
}

/// PyTorch's average: the window clipped to the padded input divides with count_include_pad, the window clipped to
/// the input without; the sum in double.
static void average_pool_reference(const float *x, int planes, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int OH,
                                   int OW, int count_include_pad, float *y, const float *dy, float *dx) {
    if (dx) memset(dx, 0, sizeof(float) * (size_t)planes * H * W);
    double *gradient = dx ? calloc((size_t)planes * H * W, sizeof(double)) : NULL;
    for (int p = 0; p < planes; p++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                int h0 = oh * SH - PH, w0 = ow * SW - PW;
                int h1 = h0 + KH < H + PH ? h0 + KH : H + PH, w1 = w0 + KW < W + PW ? w0 + KW : W + PW;
                const int padded = (h1 - h0) * (w1 - w0);
                h0 = h0 > 0 ? h0 : 0, w0 = w0 > 0 ? w0 : 0, h1 = h1 < H ? h1 : H, w1 = w1 < W ? w1 : W;
                const int divisor = count_include_pad ? padded : (h1 - h0) * (w1 - w0);
                double sum = 0;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++) sum += x[((size_t)p * H + h) * W + w];
                if (y) y[((size_t)p * OH + oh) * OW + ow] = (float)(sum / divisor);
                if (dx)
                    for (int h = h0; h < h1; h++)
                        for (int w = w0; w < w1; w++)
                            gradient[((size_t)p * H + h) * W + w] += (double)dy[((size_t)p * OH + oh) * OW + ow] / divisor;
            }
    if (dx)
        for (size_t i = 0; i < (size_t)planes * H * W; i++) dx[i] = (float)gradient[i];
    free(gradient);
}

static void check_average_pooling(void) {
    begin_section("average pooling");
    // KernelTests.averagePoolingDivisors: a 3x3 window, padding 1, stride 2 over 2x2: one window covering everything.
    const float four[4] = {1, 2, 3, 4};
    float y = NAN;
    cnn_avgpool_forward(four, 1, 2, 2, 3, 3, 2, 2, 1, 1, 1, 1, 1, &y);
    expect(y == 10.0f / 9, "3x3 padding 1 over 2x2, count_include_pad 1: %.9g, expected 10/9", y);
    cnn_avgpool_forward(four, 1, 2, 2, 3, 3, 2, 2, 1, 1, 1, 1, 0, &y);
    expect(y == 2.5f, "3x3 padding 1 over 2x2, count_include_pad 0: %.9g, expected 2.5", y);
    enum { PLANES = 3, H = 9, W = 37 };
    float *x = random_values(PLANES * H * W, 24);
    for (int k = 0; k < (int)(sizeof pool_cases / sizeof *pool_cases); k++) {
        const int KH = pool_cases[k].kh, KW = pool_cases[k].kw, SH = pool_cases[k].sh, SW = pool_cases[k].sw;
        const int PH = pool_cases[k].ph, PW = pool_cases[k].pw, OH = pool_cases[k].oh, OW = pool_cases[k].ow;
        const size_t outputs = (size_t)PLANES * OH * OW, inputs = (size_t)PLANES * H * W;
        float *fast = filled(outputs, NAN), *slow = filled(outputs, NAN), *dy = random_values(outputs, 25);
        float *dx = filled(inputs, NAN), *dx_expected = filled(inputs, NAN);
        for (int include = 0; include < 2; include++) {
            cnn_avgpool_forward(x, PLANES, H, W, KH, KW, SH, SW, PH, PW, OH, OW, include, fast);
            average_pool_reference(x, PLANES, H, W, KH, KW, SH, SW, PH, PW, OH, OW, include, slow, dy, dx_expected);
            expect_close(fast, slow, outputs, 1, 1e-5, "forward %dx%d stride %dx%d padding %dx%d, count_include_pad %d", KH, KW, SH, SW,
                         PH, PW, include);
            cnn_avgpool_backward(dy, PLANES, H, W, KH, KW, SH, SW, PH, PW, OH, OW, include, dx);
            expect_close(dx, dx_expected, inputs, 1, 1e-5, "backward %dx%d stride %dx%d padding %dx%d, count_include_pad %d", KH, KW,
                         SH, SW, PH, PW, include);
        }
        free(fast), free(slow), free(dy), free(dx), free(dx_expected);
    }
    free(x);
    end_section();
}

// ---- Batch normalisation (batchnorm.c): FusionTests.batchNormKernels ----------------------------------------

static const struct {
    int n, c, p;
} norm_shapes[] = {{1, 1, 1}, {2, 3, 17}, {4, 5, 49}, {3, 2, 16}, {2, 4, 3136}};

static void check_batch_norm(void) {
    begin_section("batch norm");
    for (int index = 0; index < (int)(sizeof norm_shapes / sizeof *norm_shapes); index++) {
        const int N = norm_shapes[index].n, C = norm_shapes[index].c, P = norm_shapes[index].p;
        const size_t count = (size_t)N * C * P;
        // An offset far from zero checks the shifted one-pass variance.
        float *x = random_values(count, 31), *dy = random_values(count, 32), *y = random_values(count, 33);
        for (size_t i = 0; i < count; i++) x[i] = x[i] * 3 + 50;
        for (int c = 0; c < C; c++) {
            double mean = 0, variance = 0, naive_mean = 0, naive_variance = 0;
            cnn_channel_moments(x, N, C, P, c, &mean, &variance);
            cnn_channel_moments_naive(x, N, C, P, c, &naive_mean, &naive_variance);
            expect_bound(fabs(mean - naive_mean), 1e-5 * fabs(naive_mean), 0, "shape (%d, %d, %d), channel %d: mean %.17g, naive %.17g",
                         N, C, P, c, mean, naive_mean);
            expect_bound(fabs(variance - naive_variance), 1e-4 * fmax(naive_variance, 1e-3), 0,
                         "shape (%d, %d, %d), channel %d: variance %.17g, naive %.17g", N, C, P, c, variance, naive_variance);
            const float inv = (float)(1 / sqrt(naive_variance + 1e-5));
            for (int masked = 0; masked < 2; masked++) {
                double sum = 0, weighted = 0, naive_sum = 0, naive_weighted = 0;
                const float *mask = masked ? y : NULL;
                cnn_bn_gradient_sums(x, dy, mask, N, C, P, c, (float)naive_mean, inv, &sum, &weighted);
                cnn_bn_gradient_sums_naive(x, dy, mask, N, C, P, c, (float)naive_mean, inv, &naive_sum, &naive_weighted);
                expect_bound(fabs(sum - naive_sum), 1e-4 * fmax(1, fabs(naive_sum)), 0,
                             "shape (%d, %d, %d), channel %d, masked %d: sum of dy %.17g, naive %.17g", N, C, P, c, masked, sum, naive_sum);
                expect_bound(fabs(weighted - naive_weighted), 1e-4 * fmax(1, fabs(naive_weighted)), 0,
                             "shape (%d, %d, %d), channel %d, masked %d: sum of dy xhat %.17g, naive %.17g", N, C, P, c, masked, weighted,
                             naive_weighted);
                // (Beyond the Swift test) the input gradient against the formula in double.
                const float a = 0.75f, mean_dy = (float)(naive_sum / ((double)N * P));
                const float mean_dy_xhat = (float)(naive_weighted / ((double)N * P));
                float *dx = filled(count, NAN), *expected = filled(count, NAN);
                cnn_bn_input_gradient(x, dy, mask, dx, N, C, P, c, (float)naive_mean, inv, a, mean_dy, mean_dy_xhat);
                size_t channel = 0;
                for (int n = 0; n < N; n++)
                    for (int i = 0; i < P; i++, channel++) {
                        const size_t k = ((size_t)n * C + c) * P + i;
                        const double g = mask && !(mask[k] > 0) ? 0.0 : dy[k];
                        const double xhat = ((double)x[k] - (float)naive_mean) * inv;
                        expected[channel] = (float)(a * (g - mean_dy - xhat * mean_dy_xhat));
                        dx[channel] = dx[k];  // gathered: the channel's values first
                    }
                expect_close(dx, expected, channel, 1, 1e-5, "shape (%d, %d, %d), channel %d, masked %d: cnn_bn_input_gradient", N, C, P, c,
                             masked);
                free(dx), free(expected);
            }
            // (Beyond the Swift test) y = a x + b over the channel, with and without the ReLU, against a plain loop.
            for (int relu = 0; relu < 2; relu++) {
                const float a = 0.3f, shift = -15.0f;
                float *out = filled(count, NAN), *expected = filled(count, NAN);
                cnn_channel_affine(x, out, N, C, P, c, a, shift, relu);
                for (int n = 0; n < N; n++)
                    for (int i = 0; i < P; i++) {
                        const size_t k = ((size_t)n * C + c) * P + i;
                        float v = x[k] * a + shift;
                        expected[k] = relu ? (v > 0 ? v : 0) : v;
                    }
                expect_bits(out, expected, count, "shape (%d, %d, %d), channel %d: cnn_channel_affine relu %d", N, C, P, c, relu);
                free(out), free(expected);
            }
        }
        free(x), free(dy), free(y);
    }
    end_section();
}

// ---- Local response normalisation (lrn.c): NewLayerKernelTests.lrn ------------------------------------------

static void check_lrn(void) {
    begin_section("LRN");
    enum { N = 3, C = 9, P = 7 * 5, COUNT = N * C * P };
    // Inputs in [-3, 3) with a large channel now and then (the hard case of a sliding window sum).
    float *x = random_values(COUNT, 21), *dy = random_values(COUNT, 22);
    for (int i = 0; i < COUNT; i++) x[i] *= 3;
    for (int i = 0; i < COUNT; i += 7 * P) x[i] = 40;
    static float y[COUNT], s[COUNT], y_naive[COUNT], s_naive[COUNT], dx[COUNT], dx_naive[COUNT];
    const float betas[] = {0.75f, 0.5f, 0.6f};
    for (int bi = 0; bi < 3; bi++)
        for (int size = 1; size <= 11; size++) {
            const float parameters[3][2] = {{1e-4f / (float)size, 2}, {0.3f, 1}, {2, 0.5f}};
            for (int pi = 0; pi < 3; pi++) {
                const float alpha = parameters[pi][0], k = parameters[pi][1], beta = betas[bi];
                cnn_lrn_forward(x, N, C, P, size, alpha, beta, k, y, s);
                cnn_lrn_forward_naive(x, N, C, P, size, alpha, beta, k, y_naive, s_naive);
                expect_close(y, y_naive, COUNT, 1, 1e-6, "y: size %d alpha %g beta %g k %g", size, alpha, beta, k);
                expect_close(s, s_naive, COUNT, 1, 1e-6, "scale: size %d alpha %g beta %g k %g", size, alpha, beta, k);
                cnn_lrn_backward(x, y_naive, s_naive, dy, N, C, P, size, alpha, beta, dx);
                cnn_lrn_backward_naive(x, y_naive, s_naive, dy, N, C, P, size, alpha, beta, dx_naive);
                expect_close(dx, dx_naive, COUNT, 1, 1e-6, "dx: size %d alpha %g beta %g k %g", size, alpha, beta, k);
            }
        }
    free(x), free(dy);
    end_section();
}

// ---- Element-wise (elementwise.c) ---------------------------------------------------------------------------

/// Values with NaN, infinities and zeros of both signs sprinkled in.
static float *awkward_values(size_t n, uint64_t seed) {
    float *v = random_values(n, seed);
    const float special[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f};
    for (size_t i = 3; i < n; i += 7) v[i] = special[(i / 7) % 5];
    return v;
}

static void check_channel_scale_shift(void) {
    begin_section("scale, shift, bias, ReLU");
    const int shapes[][3] = {{3, 5, 1}, {3, 5, 17}, {2, 4, 49}, {1, 3, 1000}};
    for (int index = 0; index < 4; index++) {
        const int images = shapes[index][0], C = shapes[index][1], P = shapes[index][2];
        const size_t count = (size_t)images * C * P;
        // With NaN, infinities and zeros of both signs in y, and a shift of -0 (where -0 * scale + -0 is -0, which
        // the ReLU turns into +0).
        float *y0 = awkward_values(count, 51), *scale = random_values(C, 52), *shift = random_values(C, 53);
        shift[1] = -0.0f;
        for (int mode = 0; mode < 8; mode++) {
            const float *a = mode & 1 ? scale : NULL, *b = mode & 2 ? shift : NULL;
            const int relu = mode >> 2;
            float *got = copy_of(y0, count), *expected = copy_of(y0, count), *bias = copy_of(y0, count);
            cnn_channel_scale_shift(got, a, b, images, C, P, relu);
            // The plain loop (scale NULL: 1; shift NULL: 0; nothing to do without either and without the ReLU).
            if (a || b || relu)
                for (int n = 0; n < images; n++)
                    for (int c = 0; c < C; c++)
                        for (int i = 0; i < P; i++) {
                            float *e = expected + ((size_t)n * C + c) * P + i;
                            const float sa = a ? a[c] : 1.0f, sb = b ? b[c] : 0.0f;
                            float v = *e * sa + sb;
                            *e = relu ? (v > 0.0f ? v : 0.0f) : v;
                        }
            expect_bits(got, expected, count, "cnn_channel_scale_shift %dx%dx%d, scale %s, shift %s, relu %d", images, C, P,
                        a ? "yes" : "NULL", b ? "yes" : "NULL", relu);
            // A bias: the scale and shift without the scale.
            if (!a) {
                cnn_add_channel_bias(bias, b, images, C, P, relu);
                expect_bits(bias, expected, count, "cnn_add_channel_bias %dx%dx%d, bias %s, relu %d", images, C, P, b ? "yes" : "NULL",
                            relu);
            }
            free(got), free(expected), free(bias);
        }
        // (Beyond the Swift tests) the bias gradient: the channels' sums, against a double loop.
        float *sums = filled(C, 0.5f), *g = random_values(count, 54);
        cnn_accumulate_channel_sums(g, sums, images, C, P);
        for (int c = 0; c < C; c++) {
            double sum = 0.5, magnitude = 0.5;
            for (int n = 0; n < images; n++)
                for (int i = 0; i < P; i++) sum += g[((size_t)n * C + c) * P + i], magnitude += fabs(g[((size_t)n * C + c) * P + i]);
            expect_bound(fabs(sums[c] - sum), 1e-6 * fmax(1, magnitude), 0,
                         "cnn_accumulate_channel_sums %dx%dx%d, channel %d: %.9g, expected %.9g", images, C, P, c, sums[c], sum);
        }
        free(sums), free(g), free(y0), free(scale), free(shift);
    }
    end_section();

    begin_section("ReLU, add, multiply");
    const size_t sizes[] = {1, 15, 16, 17, 1000, 1003};
    for (int index = 0; index < 6; index++) {
        const size_t n = sizes[index];
        float *x = awkward_values(n, 61), *g = awkward_values(n, 62), *got = filled(n, NAN), *expected = filled(n, NAN);
        cnn_relu_forward(x, got, n);
        for (size_t i = 0; i < n; i++) expected[i] = x[i] > 0 ? x[i] : 0;
        expect_bits(got, expected, n, "cnn_relu_forward, %zu values", n);
        cnn_relu_backward(x, g, got, n);
        for (size_t i = 0; i < n; i++) expected[i] = x[i] > 0 ? g[i] : 0;
        expect_bits(got, expected, n, "cnn_relu_backward, %zu values", n);
        memcpy(got, g, sizeof(float) * n);
        cnn_relu_mask(x, got, n);
        expect_bits(got, expected, n, "cnn_relu_mask, %zu values", n);
        memcpy(got, x, sizeof(float) * n);
        cnn_add(got, g, n);
        for (size_t i = 0; i < n; i++) expected[i] = x[i] + g[i];
        expect_bits(got, expected, n, "cnn_add, %zu values", n);
        cnn_multiply(x, g, got, n);
        for (size_t i = 0; i < n; i++) expected[i] = x[i] * g[i];
        expect_bits(got, expected, n, "cnn_multiply, %zu values", n);
        free(x), free(g), free(got), free(expected);
    }
    // cnn_all_finite: one NaN or infinity anywhere (in a block of 64 or in the tail) makes it 0.
    for (size_t n = 1; n <= 200; n += 66) {
        float *x = random_values(n, 63);
        expect(cnn_all_finite(x, n) == 1, "cnn_all_finite, %zu finite values", n);
        const size_t places[] = {0, n / 2, n - 1};
        const float bad[] = {NAN, INFINITY, -INFINITY};
        for (int p = 0; p < 3; p++)
            for (int q = 0; q < 3; q++) {
                const float keep = x[places[p]];
                x[places[p]] = bad[q];
                expect(cnn_all_finite(x, n) == 0, "cnn_all_finite, %zu values with %g at %zu", n, bad[q], places[p]);
                x[places[p]] = keep;
            }
        free(x);
    }
    end_section();
}

/// Softmax cross-entropy in double precision: the summed loss, and the gradient of the mean loss.
static double softmax_reference(const float *logits, const int32_t *labels, int n, int classes, float on, float off, float *gradient) {
    double total = 0;
    for (int row = 0; row < n; row++) {
        const float *z = logits + (size_t)row * classes;
        double maximum = -INFINITY, sum = 0;
        for (int j = 0; j < classes; j++) maximum = fmax(maximum, z[j]);
        for (int j = 0; j < classes; j++) sum += exp(z[j] - maximum);
        const double log_sum = maximum + log(sum);
        for (int j = 0; j < classes; j++) {
            const double target = j == labels[row] ? on : off;
            total -= target * (z[j] - log_sum);
            gradient[(size_t)row * classes + j] = (float)((exp(z[j] - log_sum) - target) / n);
        }
    }
    return total;
}

static void check_softmax(void) {
    begin_section("softmax cross-entropy");
    const int sizes[][2] = {{1, 1}, {3, 10}, {2, 16}, {4, 17}, {2, 1000}};
    for (int index = 0; index < 5; index++) {
        const int n = sizes[index][0], classes = sizes[index][1];
        const size_t count = (size_t)n * classes;
        // Logits spread over +-60, so that some exponentials reach the clamp at -87.3 and some are tiny.
        float *logits = random_values(count, 12), *gradient = filled(count, NAN), *expected = filled(count, NAN);
        for (size_t i = 0; i < count; i++) logits[i] *= 60;
        int32_t labels[4];
        for (int row = 0; row < n; row++) labels[row] = (row * 7) % classes;
        if (n > 2) labels[2] = classes;  // a label past the classes: no class is the target's
        const float smoothings[2] = {0, 0.1f};
        for (int s = 0; s < 2; s++) {
            // Label smoothing: off = epsilon / classes, on = 1 - epsilon + off.
            const float off = smoothings[s] / (float)classes, on = 1 - smoothings[s] + off;
            const float loss = cnn_softmax_cross_entropy(logits, labels, n, classes, on, off, gradient);
            const double slow = softmax_reference(logits, labels, n, classes, on, off, expected);
            expect_bound(fabs(loss - slow), 1e-5 * fmax(1, fabs(slow)), 0, "%d x %d, smoothing %g: loss %.9g, expected %.9g", n, classes,
                         smoothings[s], loss, slow);
            expect_close(gradient, expected, count, 0, 1e-6, "%d x %d, smoothing %g: the gradient", n, classes, smoothings[s]);
            // Without a gradient: the same loss.
            const float alone = cnn_softmax_cross_entropy(logits, labels, n, classes, on, off, NULL);
            expect(bits_of(alone) == bits_of(loss), "%d x %d, smoothing %g: the loss without the gradient %.9g, with %.9g", n, classes,
                   smoothings[s], alone, loss);
        }
        // A logit that is not finite makes the loss and the gradient NaN, as a plain exp would.
        logits[0] = NAN;
        const float poisoned = cnn_softmax_cross_entropy(logits, labels, n, classes, 1, 0, gradient);
        expect(poisoned != poisoned && gradient[0] != gradient[0], "%d x %d: a NaN logit gives loss %g, gradient[0] %g", n, classes,
               poisoned, gradient[0]);
        free(logits), free(gradient), free(expected);
    }
    end_section();
}

/// Dropout's mask, one generator per lane stepped one number at a time (Dropout.naiveMask), and the optimisers'
/// updates against their formulas in plain loops.
static void check_dropout_and_updates(void) {
    begin_section("dropout, SGD, Adam");
    uint64_t seeds[16];
    for (int l = 0; l < 16; l++) seeds[l] = 0x9E3779B9ull * (uint64_t)(l + 1);
    const size_t sizes[] = {1, 15, 16, 17, 1000};
    for (int index = 0; index < 5; index++) {
        const size_t n = sizes[index];
        const float keep = 0.6f;
        float *x = random_values(n, 9), *y = filled(n + 1, NAN), *mask = filled(n + 1, NAN);
        float *expected_mask = filled(n, NAN), *expected_y = filled(n, NAN);
        cnn_dropout_forward(x, y, mask, n, keep, seeds);
        generator lanes[16];
        for (int l = 0; l < 16; l++) lanes[l] = seeded(seeds[l]);
        size_t kept = 0;
        for (size_t i = 0; i < n; i++) {
            expected_mask[i] = next_float(&lanes[i % 16]) < keep ? 1 / keep : 0;
            expected_y[i] = x[i] * expected_mask[i];
            kept += expected_mask[i] > 0;
        }
        expect_bits(mask, expected_mask, n, "dropout mask, %zu values", n);
        expect_bits(y, expected_y, n, "dropout output, %zu values", n);
        expect(mask[n] != mask[n] && y[n] != y[n], "dropout, %zu values: nothing written past the end", n);
        if (n == 1000) expect(kept >= 540 && kept <= 660, "dropout: about 60%% kept: %zu of 1000", kept);
        free(x), free(y), free(mask), free(expected_mask), free(expected_y);
    }
    for (int index = 0; index < 5; index++) {
        const size_t n = sizes[index];
        float *w0 = random_values(n, 71), *g = random_values(n, 72), *v0 = random_values(n, 73), *m0 = random_values(n, 74);
        for (size_t i = 0; i < n; i++) v0[i] = fabsf(v0[i]);  // Adam's second moment is not negative
        const float lr = 0.05f, momentum = 0.9f, weight_decay = 1e-3f;
        for (int variant = 0; variant < 3; variant++) {  // no velocity; momentum; Nesterov
            float *w = copy_of(w0, n), *velocity = variant ? copy_of(v0, n) : NULL, *ew = copy_of(w0, n), *ev = copy_of(v0, n);
            const int nesterov = variant == 2;
            cnn_sgd_update(w, g, velocity, n, lr, variant ? momentum : 0, weight_decay, nesterov);
            for (size_t i = 0; i < n; i++) {
                if (!variant) {
                    ew[i] -= lr * (g[i] + weight_decay * ew[i]);
                    continue;
                }
                float grad = g[i] + weight_decay * ew[i];
                float v = momentum * ev[i] + grad;
                ev[i] = v;
                ew[i] -= lr * (nesterov ? grad + momentum * v : v);
            }
            expect_bits(w, ew, n, "SGD %s, %zu weights", variant == 0 ? "without momentum" : nesterov ? "Nesterov" : "with momentum", n);
            if (velocity) expect_bits(velocity, ev, n, "SGD %s, %zu velocities", nesterov ? "Nesterov" : "with momentum", n);
            free(w), free(velocity), free(ew), free(ev);
        }
        {
            float *w = copy_of(w0, n), *m = copy_of(m0, n), *v = copy_of(v0, n);
            float *ew = copy_of(w0, n), *em = copy_of(m0, n), *ev = copy_of(v0, n);
            const float step = 1e-3f / (1 - 0.9f), beta1 = 0.9f, beta2 = 0.999f, epsilon = 1e-8f, inverse = 1 / sqrtf(1 - 0.999f);
            cnn_adam_update(w, g, m, v, n, step, beta1, beta2, epsilon, inverse, weight_decay);
            for (size_t i = 0; i < n; i++) {
                float grad = g[i] + weight_decay * ew[i];
                float mi = beta1 * em[i] + (1 - beta1) * grad;
                float vi = beta2 * ev[i] + (1 - beta2) * grad * grad;
                em[i] = mi;
                ev[i] = vi;
                ew[i] -= step * mi / (sqrtf(vi) * inverse + epsilon);
            }
            expect_bits(w, ew, n, "Adam, %zu weights", n);
            expect_bits(m, em, n, "Adam, %zu first moments", n);
            expect_bits(v, ev, n, "Adam, %zu second moments", n);
            free(w), free(m), free(v), free(ew), free(em), free(ev);
        }
        free(w0), free(g), free(v0), free(m0);
    }
    end_section();
}

int main(void) {
    printf("kernels on %s (%s):\n", ARCH, cnn_isa_name(cnn_isa_active()));
    begin_section("dispatch");
#if defined(__aarch64__)
    expect(cnn_isa_detected() == CNN_ISA_NEON && cnn_isa_active() == CNN_ISA_NEON, "arm64: the detected and active sets are NEON (%s, %s)",
           cnn_isa_name(cnn_isa_detected()), cnn_isa_name(cnn_isa_active()));
#else
    expect(cnn_isa_active() <= cnn_isa_detected(), "the active set is one the CPU has");
#endif
    end_section();
    check_winograd();
    check_direct();
    check_direct_channels();
    check_lowering();
    check_int8();
    check_max_pooling();
    check_average_pooling();
    check_batch_norm();
    check_lrn();
    check_channel_scale_shift();
    check_softmax();
    check_dropout_and_updates();
    printf("kernels on %s: %d checks, %d failed\n", ARCH, checks, failures);
    return failures != 0;
}
