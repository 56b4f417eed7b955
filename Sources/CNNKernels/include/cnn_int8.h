// Int8 inference kernels: quantisation of activations, lowering of a quantised image, and the u8 x s8 -> s32
// GEMM whose output is turned back into floats (scale, shift, ReLU) as it is stored.
//
// Quantisation (ONNX QuantizeLinear's definition): q = saturate(round_half_to_even(x / scale) + zero_point), with
// activations unsigned (0 ... 255) and weights signed, symmetric, per output channel, within -63 ... 63. Seven-bit
// weights are what let AVX2's vpmaddubsw, which saturates its pairs of products to int16, give exact sums
// (255 * 63 * 2 = 32,130 < 32,767, as ONNX Runtime's `reduce_range`), so that every instruction set computes the
// same integers: AVX-512 VNNI (vpdpbusd), AVX2 (vpmaddubsw + vpmaddwd) and portable C.
//
// Layouts. A column matrix of K rows and N columns is stored in quads of rows: byte (k, n) is at
// ((k / 4) * ldb + n) * 4 + k % 4, ldb a multiple of 32 (`cnn_int8_columns_stride`), rows K ..< 4 * ceil(K / 4)
// are zero. Weights W [M, K] are packed in panels of 8 rows: byte (m, k) of the packed array is at
// (((m / 8) * K4 + k / 4) * 8 + m % 8) * 4 + k % 4, with K4 = ceil(K / 4); the padding rows and quads are zero.
//
// Legend: M output channels (rows of W), K = C * KH * KW, N = output positions (columns), as in cnn_kernels.h.
#ifndef CNN_INT8_H
#define CNN_INT8_H
#include "cnn_kernels.h"
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Which int8 GEMM `isa` runs: "avx512-vnni", "avx2" (also on AVX-512 CPUs without VNNI) or "portable".
const char *cnn_int8_kernel_name(cnn_isa isa);

/// y[i] = saturate(round_half_to_even(x[i] / scale) + zero_point) in 0 ... 255, for i in 0 ..< n. NaN gives 0.
void cnn_quantize_u8(const float *x, size_t n, float scale, int zero_point, uint8_t *y);
/// cnn_quantize_u8 with a given instruction set (clamped to the CPU's): for tests.
void cnn_quantize_u8_isa(cnn_isa isa, const float *x, size_t n, float scale, int zero_point, uint8_t *y);
/// w[i] = clamp(round_half_to_even(x[i] / scale), -63, 63) for the `count` weights of one output channel.
void cnn_quantize_weights_s7(const float *x, size_t count, float scale, int8_t *w);

/// The stride (in columns) of a column matrix of N columns: N rounded up to 32.
int cnn_int8_columns_stride(int N);
/// Bytes of a column matrix of K rows, stride ldb.
size_t cnn_int8_columns_size(int K, int ldb);
/// Lowers a quantised image x [C, H, W] into columns first_column ..< first_column + OH * OW of the column matrix
/// (K = C * KH * KW rows, stride ldb), positions outside the image reading `zero_point` (the quantised 0.0).
/// Rows K ..< 4 * ceil(K / 4) are zeroed. A 1x1 stride-1 unpadded kernel is a reshuffle of the image's rows. The quads
/// of rows are shared out over up to `threads` threads when there is enough to share (the same bytes either way).
void cnn_int8_im2col(const uint8_t *x, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int OH,
                     int OW, uint8_t zero_point, uint8_t *columns, int ldb, int first_column, int threads);

/// y [C, Hp, Wp] = x [C, H, W] with PH rows above and PW columns to the left of `zero_point` (and as many as fill
/// Hp x Wp below and to the right).
void cnn_int8_pad(const uint8_t *x, int C, int H, int W, int PH, int PW, int Hp, int Wp, uint8_t zero_point, uint8_t *y);
/// The lowering of a stride-1 convolution over a padded image x [C, Hp, Wp] "at full width": OH * Wp columns, column
/// oy * Wp + ox being output (oy, ox) for ox < Wp - KW + 1 and garbage beyond (the caller drops those columns). Each
/// row of the column matrix is then one contiguous run of the image, lowered without bounds checks. x must have
/// KW - 1 readable bytes after its last plane.
void cnn_int8_im2col_wide(const uint8_t *x, int C, int Hp, int Wp, int KH, int KW, int OH, uint8_t *columns, int ldb,
                          int first_column, int threads);

/// Bytes of the packed weights of M rows and K columns.
size_t cnn_int8_packed_weights_size(int M, int K);
/// Packs W [M, K] (row stride ldw) and writes each row's sum of weights to row_sums[M] (for the zero point).
void cnn_int8_pack_weights(const int8_t *w, int M, int K, int ldw, int8_t *packed, int32_t *row_sums);

/// S [M, N] = W x columns, in int32. Then either C32[m * ldc32 + n] = S (when C32 is not NULL), or
/// C[m * ldc + n] = fma(float(S), scale[m], shift[m]), max(0, .) with `relu`: the float output of the layer.
/// Columns are split over `threads`; the result does not depend on their count. `isa` is clamped to the CPU's.
void cnn_int8_gemm_isa(cnn_isa isa, int M, int N, int K, const int8_t *packed, const uint8_t *columns, int ldb,
                       const float *scale, const float *shift, int relu, float *C, int ldc, int32_t *C32, int ldc32,
                       int threads);
/// cnn_int8_gemm_isa with the active instruction set.
void cnn_int8_gemm(int M, int N, int K, const int8_t *packed, const uint8_t *columns, int ldb, const float *scale,
                   const float *shift, int relu, float *C, int ldc, int threads);

/// The oracle: y[CO, OH, OW] = sum over c, ky, kx of w[co, c, ky, kx] * x[c, iy, ix] in int32, positions outside
/// the image reading `zero_point`.
void cnn_int8_conv_naive(const uint8_t *x, int C, int H, int W, const int8_t *w, int CO, int KH, int KW, int SH, int SW,
                         int PH, int PW, int OH, int OW, uint8_t zero_point, int32_t *y);

#ifdef __cplusplus
}
#endif
#endif
