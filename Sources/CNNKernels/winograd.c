// Stride-1 convolution by Winograd's minimal filtering (Lavin and Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2015), on 6x6 input tiles: F(4x4, 3x3) for 3x3 kernels and F(2x2, 5x5) for 5x5 kernels. Each OUT x OUT
// block of outputs comes from a 6x6 block of input through Y = A^T [(G g G^T) .* (B^T d B)] A, so the
// multiplications per output fall from 9 C to 36 C / 16 = 2.25 C (3x3) and from 25 C to 36 C / 4 = 9 C (5x5).
// Summed over the input channels, the element-wise products become 36 independent GEMMs
// M[xi] (CO x tiles) = U[xi] (CO x C) V[xi] (C x tiles), one per position xi of the 6x6 transformed tile.
// Both use the interpolation points 0, 1, -1, 2, -2 and infinity, which give both the same B^T (checked by solving
// for it from A^T and G: Scripts/reference/winograd_matrices.py).
//
// Legend: N batch, C input channels, H x W input, CO output channels, R x R kernel, OUT = 7 - R outputs per tile
// side, OH x OW output, PT/PL top/left padding (the bottom/right padding is implied by OH and OW); TH x TW = tiles
// per image, ceil(OH / OUT) x ceil(OW / OUT); xi = 0..35, the position in a transformed tile; LANES tiles are
// transformed side by side.
//
// The batch's tiles are processed in blocks of up to a few thousand, one after another; each block goes through
// three parallel phases (transform the input by channels, the 36 GEMMs by xi, transform the output by output
// channel), so every value is computed by one chunk whatever the thread count, and small layers (Inception's 7x7
// maps: 64 tiles at batch 16) use every thread too. A block's buffers belong to the calling thread and are kept.
#include "cnn_kernels.h"
#include "buffers.h"
#include <stdlib.h>
#include <string.h>

enum { LANES = 16, TILE = 6, XI = TILE * TILE, OUT_MAX = 4, BLOCK_MAX = 4096 };

// ---- The three transforms, on LANES tiles at once --------------------------------------------------

#define FOR_LANES for (int l = 0; l < LANES; l++)

/// out[i] = (B^T in)[i] for six vectors of LANES floats, `stride` floats apart.
#define INPUT_1D(in, si, out, so)                                                                                  \
    FOR_LANES {                                                                                                    \
        float d0 = in[0 * si + l], d1 = in[1 * si + l], d2 = in[2 * si + l], d3 = in[3 * si + l];                  \
        float d4 = in[4 * si + l], d5 = in[5 * si + l];                                                            \
        out[0 * so + l] = 4 * d0 - 5 * d2 + d4;                                                                    \
        out[1 * so + l] = -4 * (d1 + d2) + d3 + d4;                                                                \
        out[2 * so + l] = 4 * (d1 - d2) - d3 + d4;                                                                 \
        out[3 * so + l] = 2 * (d3 - d1) - d2 + d4;                                                                 \
        out[4 * so + l] = 2 * (d1 - d3) - d2 + d4;                                                                 \
        out[5 * so + l] = 4 * d1 - 5 * d3 + d5;                                                                    \
    }

/// out[i] = (A^T in)[i], six vectors to four.
#define OUTPUT_1D(in, si, out, so)                                                                                 \
    FOR_LANES {                                                                                                    \
        float m0 = in[0 * si + l], m1 = in[1 * si + l], m2 = in[2 * si + l], m3 = in[3 * si + l];                  \
        float m4 = in[4 * si + l], m5 = in[5 * si + l];                                                            \
        float s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;                                          \
        out[0 * so + l] = m0 + s12 + s34;                                                                          \
        out[1 * so + l] = d12 + 2 * d34;                                                                           \
        out[2 * so + l] = s12 + 4 * s34;                                                                           \
        out[3 * so + l] = d12 + 8 * d34 + m5;                                                                      \
    }

/// out[i] = (A in)[i], four vectors to six: the adjoint of OUTPUT_1D.
#define GRADIENT_1D(in, si, out, so)                                                                               \
    FOR_LANES {                                                                                                    \
        float y0 = in[0 * si + l], y1 = in[1 * si + l], y2 = in[2 * si + l], y3 = in[3 * si + l];                  \
        float s02 = y0 + y2, s13 = y1 + y3, f02 = y0 + 4 * y2, f13 = 2 * y1 + 8 * y3;                              \
        out[0 * so + l] = y0;                                                                                      \
        out[1 * so + l] = s02 + s13;                                                                               \
        out[2 * so + l] = s02 - s13;                                                                               \
        out[3 * so + l] = f02 + f13;                                                                               \
        out[4 * so + l] = f02 - f13;                                                                               \
        out[5 * so + l] = y3;                                                                                      \
    }

/// F(2, 5): out[i] = (A^T in)[i], six vectors to two.
#define OUTPUT_1D_F2(in, si, out, so)                                                                              \
    FOR_LANES {                                                                                                    \
        float m0 = in[0 * si + l], m1 = in[1 * si + l], m2 = in[2 * si + l], m3 = in[3 * si + l];                  \
        float m4 = in[4 * si + l], m5 = in[5 * si + l];                                                            \
        out[0 * so + l] = m0 + (m1 + m2) + (m3 + m4);                                                              \
        out[1 * so + l] = (m1 - m2) + 2 * (m3 - m4) + m5;                                                          \
    }

/// F(2, 5): out[i] = (A in)[i], two vectors to six: the adjoint of OUTPUT_1D_F2.
#define GRADIENT_1D_F2(in, si, out, so)                                                                            \
    FOR_LANES {                                                                                                    \
        float y0 = in[0 * si + l], y1 = in[1 * si + l];                                                           \
        out[0 * so + l] = y0;                                                                                      \
        out[1 * so + l] = y0 + y1;                                                                                 \
        out[2 * so + l] = y0 - y1;                                                                                 \
        out[3 * so + l] = y0 + 2 * y1;                                                                             \
        out[4 * so + l] = y0 - 2 * y1;                                                                             \
        out[5 * so + l] = y1;                                                                                      \
    }

/// A separable transform of LANES tiles at once: in [IN][IN][LANES] to out [OUT][OUT][LANES], ONE_D (IN vectors to OUT)
/// applied down the columns, then along the rows. Input: B^T d B (6 to 6); output: A^T m A (6 to 4 or 2); gradient:
/// A dy A^T (4 or 2 to 6), the adjoint of the output transform.
#define DEFINE_TRANSFORM(NAME, ATTRIBUTES, ONE_D, IN, OUT)                                                          \
    ATTRIBUTES static void NAME(const float *restrict source, float *restrict target) {                           \
        float t[OUT * IN * LANES];                                                                                 \
        for (int j = 0; j < IN; j++) {                                                                             \
            const float *in = source + j * LANES;                                                                  \
            float *out = t + j * LANES;                                                                            \
            ONE_D(in, IN * LANES, out, IN * LANES)                                                                 \
        }                                                                                                          \
        for (int i = 0; i < OUT; i++) {                                                                            \
            const float *in = t + i * IN * LANES;                                                                  \
            float *out = target + i * OUT * LANES;                                                                 \
            ONE_D(in, LANES, out, LANES)                                                                           \
        }                                                                                                          \
    }

#define AVX512 __attribute__((target("avx512f,fma")))
DEFINE_TRANSFORM(input_transform_portable, , INPUT_1D, TILE, TILE)
DEFINE_TRANSFORM(output_transform_f4_portable, , OUTPUT_1D, TILE, 4)
DEFINE_TRANSFORM(output_transform_f2_portable, , OUTPUT_1D_F2, TILE, 2)
DEFINE_TRANSFORM(gradient_transform_f4_portable, , GRADIENT_1D, 4, TILE)
DEFINE_TRANSFORM(gradient_transform_f2_portable, , GRADIENT_1D_F2, 2, TILE)
#if defined(__x86_64__)
DEFINE_TRANSFORM(input_transform_avx512, AVX512, INPUT_1D, TILE, TILE)
DEFINE_TRANSFORM(output_transform_f4_avx512, AVX512, OUTPUT_1D, TILE, 4)
DEFINE_TRANSFORM(output_transform_f2_avx512, AVX512, OUTPUT_1D_F2, TILE, 2)
DEFINE_TRANSFORM(gradient_transform_f4_avx512, AVX512, GRADIENT_1D, 4, TILE)
DEFINE_TRANSFORM(gradient_transform_f2_avx512, AVX512, GRADIENT_1D_F2, 2, TILE)
#define AVX2 __attribute__((target("avx2,fma")))
DEFINE_TRANSFORM(input_transform_avx2, AVX2, INPUT_1D, TILE, TILE)
DEFINE_TRANSFORM(output_transform_f4_avx2, AVX2, OUTPUT_1D, TILE, 4)
DEFINE_TRANSFORM(output_transform_f2_avx2, AVX2, OUTPUT_1D_F2, TILE, 2)
DEFINE_TRANSFORM(gradient_transform_f4_avx2, AVX2, GRADIENT_1D, 4, TILE)
DEFINE_TRANSFORM(gradient_transform_f2_avx2, AVX2, GRADIENT_1D_F2, 2, TILE)
#endif

typedef void (*transform_fn)(const float *restrict, float *restrict);

/// The filter transforms' matrices G (6 x R): F(4, 3) and F(2, 5).
static const double G3[TILE][3] = {{1.0 / 4, 0, 0},           {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                   {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
static const double G5[TILE][5] = {{1.0 / 4, 0, 0, 0, 0},
                                   {-1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6},
                                   {-1.0 / 6, 1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6},
                                   {1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 3, 2.0 / 3},
                                   {1.0 / 24, -1.0 / 12, 1.0 / 6, -1.0 / 3, 2.0 / 3},
                                   {0, 0, 0, 0, 1}};

/// Filters (rows) x (columns) with the column index in LANES: u [36][rows][columns] = G g G^T of the filters in
/// row `row`, columns column0 ..< column0 + count. R is a constant in each instantiation, so the loops over lanes
/// vectorise; the transform runs on every forward and backward pass (the weights change at each step).
static inline __attribute__((always_inline)) void transform_filters(const float *w, int CO, int C, const int R, int flip,
                                                                   int row, int column0, int count, float *u) {
    float g[5 * 5][LANES], t[TILE * 5][LANES], v[XI][LANES];
    const size_t rows = flip ? (size_t)C : (size_t)CO, columns = flip ? (size_t)CO : (size_t)C;
    for (int l = 0; l < LANES; l++) {
        int column = column0 + (l < count ? l : 0);
        int o = flip ? column : row, c = flip ? row : column;
        const float *filter = w + ((size_t)o * C + c) * R * R;
        // flip: the filter of the input gradient, w'[c][o] = w[o][c] turned by 180 degrees.
        for (int e = 0; e < R * R; e++) g[e][l] = filter[flip ? R * R - 1 - e : e];
    }
    for (int i = 0; i < TILE; i++)
        for (int b = 0; b < R; b++) {
            FOR_LANES t[i * R + b][l] = 0;
            for (int a = 0; a < R; a++) {
                const float G = (float)(R == 3 ? G3[i][a] : G5[i][a]);
                FOR_LANES t[i * R + b][l] += G * g[a * R + b][l];
            }
        }
    for (int i = 0; i < TILE; i++)
        for (int j = 0; j < TILE; j++) {
            FOR_LANES v[i * TILE + j][l] = 0;
            for (int b = 0; b < R; b++) {
                const float G = (float)(R == 3 ? G3[j][b] : G5[j][b]);
                FOR_LANES v[i * TILE + j][l] += t[i * R + b][l] * G;
            }
        }
    for (int xi = 0; xi < XI; xi++) memcpy(u + (size_t)xi * rows * columns + (size_t)row * columns + column0, v[xi], count * sizeof(float));
}

int cnn_winograd_available(int R) { return R == 3 || R == 5; }

void cnn_winograd_transform_filter(const float *w, int CO, int C, int R, int flip, float *u) {
    const int rows = flip ? C : CO, columns = flip ? CO : C;
    for (int row = 0; row < rows; row++)
        for (int column0 = 0; column0 < columns; column0 += LANES) {
            int count = columns - column0 < LANES ? columns - column0 : LANES;
            if (R == 3) transform_filters(w, CO, C, 3, flip, row, column0, count, u);
            else transform_filters(w, CO, C, 5, flip, row, column0, count, u);
        }
}

/// G's entry (i, a) for an R x R kernel.
static double g_entry(int R, int i, int a) { return R == 3 ? G3[i][a] : G5[i][a]; }

// ---- The convolution -------------------------------------------------------------------------------

/// The calling thread's buffers: a block's V [36][C][block] and M [36][CO][block] (or dM), and the weight
/// gradient's dU [36][CO][C]. Kept between calls, so a training step allocates nothing once shapes are stable.
static _Thread_local float *block_buffer, *gradient_buffer, *packed_filter_buffer, *filter_buffer;
static _Thread_local size_t block_capacity, gradient_capacity, packed_filter_capacity, filter_capacity;

typedef struct {
    const float *x, *scale, *bias, *dy;
    float *y, *du;
    const float *packed_u;  // the forward pass's U[xi], packed for the GEMM, packed_size floats each
    size_t packed_size;
    int N, C, H, W, CO, R, out, PT, PL, OH, OW, TH, TW;
    int relu;  // the forward pass applies max(0, .) after the scale (or NULL) and the bias (or NULL)
    long tiles;
    int block, parts;
    transform_fn input_transform, output_transform, gradient_transform;
    // The block in progress: its first tile, its tile count, its GEMM width (whole groups of lanes), its buffers.
    long t0;
    int count, width;
    float *v, *m;
    const int *origins;  // per tile of the block: image, top and left output coordinate
} job;

/// The image and the top-left output coordinate of the block's tile i (i < count).
static inline void tile_origin(const job *j, int i, long *image, int *y0, int *x0) {
    *image = j->origins[3 * i];
    *y0 = j->origins[3 * i + 1];
    *x0 = j->origins[3 * i + 2];
}

/// The share [begin, end) of `total` that part `part` of j->parts takes.
static void share(const job *j, int part, int total, int *begin, int *end) {
    *begin = (int)((long)part * total / j->parts);
    *end = (int)((long)(part + 1) * total / j->parts);
}

/// Phase 1: V [36][C][block] = B^T d B of the block's tiles of x for this part's channels; lanes past the block's
/// last tile are zeros.
static void input_phase(void *context, int part) {
    const job *j = context;
    const int C = j->C, H = j->H, W = j->W, block = j->block;
    int c0, c1;
    share(j, part, C, &c0, &c1);
    float d[TILE * TILE * LANES] __attribute__((aligned(64)));
    float t[XI * LANES] __attribute__((aligned(64)));
    // Channel by channel, so that the 36 rows of V written for a channel are written from start to end.
    for (int c = c0; c < c1; c++) {
        for (int g = 0; g < j->width; g += LANES) {
            FOR_LANES {
                int valid = g + l < j->count;
                long image;
                int y0, x0;
                tile_origin(j, valid ? g + l : 0, &image, &y0, &x0);
                y0 -= j->PT;
                x0 -= j->PL;
                const float *plane = j->x + ((size_t)image * C + c) * H * W;
                if (valid && y0 >= 0 && x0 >= 0 && y0 + TILE <= H && x0 + TILE <= W) {
                    for (int a = 0; a < TILE; a++) {
                        const float *row = plane + (size_t)(y0 + a) * W + x0;
                        for (int b = 0; b < TILE; b++) d[(a * TILE + b) * LANES + l] = row[b];
                    }
                } else {
                    for (int a = 0; a < TILE; a++)
                        for (int b = 0; b < TILE; b++) {
                            int yy = y0 + a, xx = x0 + b;
                            int inside = valid && yy >= 0 && yy < H && xx >= 0 && xx < W;
                            d[(a * TILE + b) * LANES + l] = inside ? plane[(size_t)yy * W + xx] : 0;
                        }
                }
            }
            j->input_transform(d, t);
            for (int xi = 0; xi < XI; xi++)
                memcpy(j->v + ((size_t)xi * C + c) * block + g, t + xi * LANES, LANES * sizeof(float));
        }
    }
}

/// Phase 2 of the forward pass: M[xi] (CO x width) = U[xi] (CO x C) V[xi] (C x width).
static void product_phase(void *context, int xi) {
    const job *j = context;
    cnn_gemm_trace(0, 0, j->CO, j->width, j->C, 1);
    cnn_sgemm_packed(j->CO, j->width, j->C, 1.0f, j->packed_u + (size_t)xi * j->packed_size, 0,
                     j->v + (size_t)xi * j->C * j->block, j->block, 0.0f, j->m + (size_t)xi * j->CO * j->block, j->block);
}

typedef struct {
    const float *u;
    float *packed;
    int C, CO;
    size_t size;
} pack_job;

/// Before the blocks: each U[xi] packed once for the GEMM, rather than once per block.
static void pack_phase(void *context, int xi) {
    const pack_job *p = context;
    cnn_sgemm_pack_a(0, p->CO, p->C, p->u + (size_t)xi * p->CO * p->C, p->C, p->packed + (size_t)xi * p->size);
}

/// Phase 3 of the forward pass: y = A^T M A + bias (then max(0, .) with relu) for this part's output channels.
static void output_phase(void *context, int part) {
    const job *j = context;
    const int CO = j->CO, block = j->block;
    int o0, o1;
    share(j, part, CO, &o0, &o1);
    float d[TILE * TILE * LANES] __attribute__((aligned(64)));
    float t[XI * LANES] __attribute__((aligned(64)));
    // Output channel by output channel: the 36 rows of M it reads are then read from start to end.
    for (int o = o0; o < o1; o++) {
        for (int g = 0; g < j->width; g += LANES) {
            for (int xi = 0; xi < XI; xi++)
                memcpy(t + xi * LANES, j->m + ((size_t)xi * CO + o) * block + g, LANES * sizeof(float));
            j->output_transform(t, d);
            const float scale = j->scale ? j->scale[o] : 1, bias = j->bias ? j->bias[o] : 0;
            const int values = j->out * j->out * LANES;
            if (j->relu)
                for (int i = 0; i < values; i++) {
                    float v = d[i] * scale + bias;
                    d[i] = v > 0 ? v : 0;
                }
            else
                for (int i = 0; i < values; i++) d[i] = d[i] * scale + bias;
            for (int l = 0; l < LANES && g + l < j->count; l++) {
                long image;
                int y0, x0;
                tile_origin(j, g + l, &image, &y0, &x0);
                float *plane = j->y + ((size_t)image * CO + o) * j->OH * j->OW;
                const int out = j->out;
                int rows = j->OH - y0 < out ? j->OH - y0 : out, columns = j->OW - x0 < out ? j->OW - x0 : out;
                for (int a = 0; a < rows; a++)
                    for (int b = 0; b < columns; b++)
                        plane[(size_t)(y0 + a) * j->OW + x0 + b] = d[(a * out + b) * LANES + l];
            }
        }
    }
}

/// Phase 1 of the weight gradient, beside input_phase: dM [36][CO][block] = A dy A^T for this part's output
/// channels, dY read as zero past the output's edge and in lanes past the block's last tile.
static void gradient_phase(void *context, int part) {
    const job *j = context;
    const int CO = j->CO, block = j->block;
    int o0, o1;
    share(j, part, CO, &o0, &o1);
    float d[OUT_MAX * OUT_MAX * LANES] __attribute__((aligned(64)));
    float t[XI * LANES] __attribute__((aligned(64)));
    // Output channel by output channel, so that the 36 rows of dM written for it are written from start to end.
    for (int o = o0; o < o1; o++) {
        for (int g = 0; g < j->width; g += LANES) {
            memset(d, 0, sizeof d);
            for (int l = 0; l < LANES && g + l < j->count; l++) {
                long image;
                int y0, x0;
                tile_origin(j, g + l, &image, &y0, &x0);
                const float *plane = j->dy + ((size_t)image * CO + o) * j->OH * j->OW;
                const int out = j->out;
                int rows = j->OH - y0 < out ? j->OH - y0 : out, columns = j->OW - x0 < out ? j->OW - x0 : out;
                for (int a = 0; a < rows; a++)
                    for (int b = 0; b < columns; b++) d[(a * out + b) * LANES + l] = plane[(size_t)(y0 + a) * j->OW + x0 + b];
            }
            j->gradient_transform(d, t);
            for (int xi = 0; xi < XI; xi++)
                memcpy(j->m + ((size_t)xi * CO + o) * block + g, t + xi * LANES, LANES * sizeof(float));
        }
    }
}

static void input_and_gradient_phase(void *context, int part) {
    input_phase(context, part);
    gradient_phase(context, part);
}

/// Phase 2 of the weight gradient: dU[xi] (CO x C) += dM[xi] (CO x width) V[xi]^T (width x C).
static void gradient_product_phase(void *context, int xi) {
    const job *j = context;
    cnn_gemm_trace(0, 1, j->CO, j->C, j->width, 1);
    cnn_sgemm(0, 1, j->CO, j->C, j->width, 1.0f, j->m + (size_t)xi * j->CO * j->block, j->block,
              j->v + (size_t)xi * j->C * j->block, j->block, 1.0f, j->du + (size_t)xi * j->CO * j->C, j->C);
}

/// The tiling (blocks of `least` to 4096 tiles within about `megabytes` of buffers), the parts of the transform
/// phases, the transforms for this CPU, and the calling thread's buffers.
static void plan(job *j, int threads, long megabytes, long least) {
    j->out = TILE + 1 - j->R;
    j->TH = (j->OH + j->out - 1) / j->out;
    j->TW = (j->OW + j->out - 1) / j->out;
    j->tiles = (long)j->N * j->TH * j->TW;
    long block = (megabytes << 20) / ((long)sizeof(float) * XI * (j->C + j->CO));
    long whole = (j->tiles + LANES - 1) / LANES * LANES;
    if (block > BLOCK_MAX) block = BLOCK_MAX;
    block = block / LANES * LANES;
    if (block < least) block = least;
    if (block > whole) block = whole;
    j->block = (int)block;
    j->parts = 4 * (threads < 1 ? 1 : threads);
    const int f4 = j->R == 3;
    j->input_transform = input_transform_portable;
    j->output_transform = f4 ? output_transform_f4_portable : output_transform_f2_portable;
    j->gradient_transform = f4 ? gradient_transform_f4_portable : gradient_transform_f2_portable;
#if defined(__x86_64__)
    if (cnn_isa_active() == CNN_ISA_AVX512) {
        j->input_transform = input_transform_avx512;
        j->output_transform = f4 ? output_transform_f4_avx512 : output_transform_f2_avx512;
        j->gradient_transform = f4 ? gradient_transform_f4_avx512 : gradient_transform_f2_avx512;
    } else if (cnn_isa_active() == CNN_ISA_AVX2) {
        j->input_transform = input_transform_avx2;
        j->output_transform = f4 ? output_transform_f4_avx2 : output_transform_f2_avx2;
        j->gradient_transform = f4 ? gradient_transform_f4_avx2 : gradient_transform_f2_avx2;
    }
#endif
    j->v = cnn_reserve(&block_buffer, &block_capacity, (size_t)XI * block * (j->C + j->CO));
    j->m = j->v + (size_t)XI * j->C * block;
}

/// The calling thread's table of the block's tile origins.
static _Thread_local int origin_table[3 * BLOCK_MAX];

/// Steps j through its blocks.
static int next_block(job *j, long t0) {
    if (t0 >= j->tiles) return 0;
    j->t0 = t0;
    j->count = (int)(j->tiles - t0 < j->block ? j->tiles - t0 : j->block);
    j->width = (j->count + LANES - 1) / LANES * LANES;
    const long per_image = (long)j->TH * j->TW;
    for (int i = 0; i < j->count; i++) {
        long tile = t0 + i, r = tile % per_image;
        origin_table[3 * i] = (int)(tile / per_image);
        origin_table[3 * i + 1] = (int)(r / j->TW) * j->out;
        origin_table[3 * i + 2] = (int)(r % j->TW) * j->out;
    }
    j->origins = origin_table;
    return 1;
}

size_t cnn_winograd_filter_size(int C, int CO) { return (size_t)XI * C * CO; }

size_t cnn_winograd_packed_filter_size(int C, int CO) { return XI * cnn_sgemm_packed_a_size(CO, C); }

void cnn_winograd_pack_filter(const float *u, int C, int CO, float *packed, int threads) {
    pack_job p = {.u = u, .packed = packed, .C = C, .CO = CO, .size = cnn_sgemm_packed_a_size(CO, C)};
    cnn_parallel_run(XI, threads, pack_phase, &p);
}

void cnn_winograd_prepare_filter(const float *w, int CO, int C, int R, int flip, float *packed, int threads) {
    if (C <= 0 || CO <= 0 || !cnn_winograd_available(R)) return;
    float *u = cnn_reserve(&filter_buffer, &filter_capacity, cnn_winograd_filter_size(C, CO));
    cnn_winograd_transform_filter(w, CO, C, R, flip, u);
    if (flip) cnn_winograd_pack_filter(u, CO, C, packed, threads);
    else cnn_winograd_pack_filter(u, C, CO, packed, threads);
}

void cnn_winograd_conv(const float *x, int N, int C, int H, int W, const float *u, const float *bias, int relu, int CO,
                       int R, int PT, int PL, int OH, int OW, float *y, int threads) {
    if (N <= 0 || C <= 0 || CO <= 0 || OH <= 0 || OW <= 0 || !cnn_winograd_available(R)) return;
    float *packed = cnn_reserve(&packed_filter_buffer, &packed_filter_capacity, cnn_winograd_packed_filter_size(C, CO));
    cnn_winograd_pack_filter(u, C, CO, packed, threads);
    cnn_winograd_conv_packed(x, N, C, H, W, packed, NULL, bias, relu, CO, R, PT, PL, OH, OW, y, threads);
}

void cnn_winograd_conv_packed(const float *x, int N, int C, int H, int W, const float *packed, const float *scale,
                              const float *shift, int relu, int CO, int R, int PT, int PL, int OH, int OW, float *y,
                              int threads) {
    if (N <= 0 || C <= 0 || CO <= 0 || OH <= 0 || OW <= 0 || !cnn_winograd_available(R)) return;
    job j = {.x = x, .scale = scale, .bias = shift, .relu = relu, .y = y, .N = N, .C = C, .H = H, .W = W, .CO = CO,
             .R = R, .PT = PT, .PL = PL, .OH = OH, .OW = OW};
    // Small blocks, so that a block's V and M stay in the caches between the phases (U is packed once, above them).
    plan(&j, threads, 4, 128);
    j.packed_size = cnn_sgemm_packed_a_size(CO, C);
    j.packed_u = packed;
    for (long t0 = 0; next_block(&j, t0); t0 += j.block) {
        cnn_parallel_run(j.parts, threads, input_phase, &j);
        cnn_parallel_run(XI, threads, product_phase, &j);
        cnn_parallel_run(j.parts, threads, output_phase, &j);
    }
}

typedef struct {
    const float *du;
    float *dw;
    int CO, C, R, parts;
} filter_gradient_job;

/// dW [o][c] += G^T dU[.][o][c] G for the output channels of one part.
static void filter_gradient_phase(void *context, int part) {
    const filter_gradient_job *f = context;
    int CO = f->CO, C = f->C, R = f->R;
    enum { CB = 64 };
    double g[TILE][5];
    for (int i = 0; i < TILE; i++)
        for (int a = 0; a < R; a++) g[i][a] = g_entry(R, i, a);
    int o0 = (int)((long)part * CO / f->parts), o1 = (int)((long)(part + 1) * CO / f->parts);
    for (int o = o0; o < o1; o++)
        for (int c0 = 0; c0 < C; c0 += CB) {
            int cb = C - c0 < CB ? C - c0 : CB;
            double t[TILE][5][CB];
            for (int i = 0; i < TILE; i++)
                for (int b = 0; b < R; b++)
                    for (int cc = 0; cc < cb; cc++) t[i][b][cc] = 0;
            for (int i = 0; i < TILE; i++)
                for (int b = 0; b < R; b++)
                    for (int k = 0; k < TILE; k++) {
                        const float *row = f->du + (size_t)(i * TILE + k) * CO * C + (size_t)o * C + c0;
                        double gk = g[k][b];
                        for (int cc = 0; cc < cb; cc++) t[i][b][cc] += row[cc] * gk;
                    }
            for (int cc = 0; cc < cb; cc++) {
                float *w = f->dw + ((size_t)o * C + c0 + cc) * R * R;
                for (int a = 0; a < R; a++)
                    for (int b = 0; b < R; b++) {
                        double sum = 0;
                        for (int i = 0; i < TILE; i++) sum += g[i][a] * t[i][b][cc];
                        w[a * R + b] += (float)sum;
                    }
            }
        }
}

void cnn_winograd_weight_gradient(const float *x, int N, int C, int H, int W, const float *dy, int CO, int R, int PT,
                                  int PL, int OH, int OW, float *dw, int threads) {
    if (N <= 0 || C <= 0 || CO <= 0 || OH <= 0 || OW <= 0 || !cnn_winograd_available(R)) return;
    job j = {.x = x, .dy = dy, .N = N, .C = C, .H = H, .W = W, .CO = CO, .R = R, .PT = PT, .PL = PL, .OH = OH,
             .OW = OW};
    // Large blocks: each block reads and writes all of dU [36][CO][C] once.
    plan(&j, threads, 32, 4 * LANES);
    // dU [36][CO][C], summed block after block in order, in the calling thread's kept buffer (no allocation per step).
    j.du = cnn_reserve(&gradient_buffer, &gradient_capacity, (size_t)XI * CO * C);
    memset(j.du, 0, (size_t)XI * CO * C * sizeof(float));
    for (long t0 = 0; next_block(&j, t0); t0 += j.block) {
        cnn_parallel_run(j.parts, threads, input_and_gradient_phase, &j);
        cnn_parallel_run(XI, threads, gradient_product_phase, &j);
    }
    // dW = G^T dU G for each filter, added to dw: output channels split over the threads, 64 input channels at a
    // time so that each of dU's 36 planes is read contiguously. The same double-precision sums, term for term and in
    // the same order, as one filter at a time.
    filter_gradient_job f = {.du = j.du, .dw = dw, .CO = CO, .C = C, .R = R, .parts = threads < 1 ? 1 : threads < CO ? threads : CO};
    cnn_parallel_run(f.parts, threads, filter_gradient_phase, &f);
}
