// CNNKernels: the hot loops of ClassicCNN. Buffers in, buffers out: no tensors, no layers, no allocation
// visible to the caller. Every fast kernel has a naive twin (suffix `_naive`) that is its test oracle.
//
// Legend used throughout: M, N, K = GEMM sizes (C[M,N] = A[M,K] * B[K,N]); row-major storage;
// C = channels, H/W = input height/width, OH/OW = output height/width, KH/KW = kernel size,
// SH/SW = stride, PH/PW = padding (top/left; the bottom/right padding is implied by OH/OW).
#ifndef CNN_KERNELS_H
#define CNN_KERNELS_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- CPU dispatch ------------------------------------------------------------------------------

typedef enum {
    CNN_ISA_PORTABLE = 0,
    CNN_ISA_AVX2 = 1,
    CNN_ISA_AVX512 = 2,
    CNN_ISA_NEON = 3,  // arm64 (Advanced SIMD is part of the base architecture)
} cnn_isa;

/// The best instruction set this CPU supports (and this build can use).
cnn_isa cnn_isa_detected(void);
/// The instruction set the kernels currently use.
cnn_isa cnn_isa_active(void);
/// Forces an instruction set for the whole process (clamped to what the CPU supports); returns the one now active.
/// For benchmarks; tests use cnn_sgemm_isa, which changes nothing global.
cnn_isa cnn_isa_select(cnn_isa isa);
const char *cnn_isa_name(cnn_isa isa);

// ---- Threads ------------------------------------------------------------------------------------

/// Runs fn(context, i) for i in 0..<chunks on the calling thread and up to threads - 1 pool workers (started on
/// first use). Chunk i is the same work whichever thread runs it. Nested calls, and calls made while another
/// thread's job runs, run inline.
void cnn_parallel_run(int chunks, int threads, void (*fn)(void *context, int chunk), void *context);

// ---- GEMM --------------------------------------------------------------------------------------

/// C = alpha * op(A) * op(B) + beta * C, row-major, single-threaded.
/// op(A) is M x K (A is K x M when trans_a), op(B) is K x N (B is N x K when trans_b).
/// beta == 0 overwrites C without reading it (NaNs in C do not propagate).
void cnn_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
/// cnn_sgemm with a given instruction set (clamped to the CPU's), leaving the active one alone: for tests.
void cnn_sgemm_isa(cnn_isa isa, int trans_a, int trans_b, int M, int N, int K, float alpha,
                   const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
/// A packed once for many products with it (a layer's weights against each image's columns): the floats that
/// cnn_sgemm_pack_a writes for op(A) [M, K], then C = alpha op(A) op(B) + beta C with it, as cnn_sgemm computes it.
size_t cnn_sgemm_packed_a_size(int M, int K);
void cnn_sgemm_pack_a(int trans_a, int M, int K, const float *A, int lda, float *packed);
void cnn_sgemm_packed(int M, int N, int K, float alpha, const float *packed_a, int trans_b, const float *B, int ldb,
                      float beta, float *C, int ldc);
/// The naive triple loop, in double precision accumulation: the oracle for cnn_sgemm.
void cnn_sgemm_naive(int trans_a, int trans_b, int M, int N, int K, float alpha,
                     const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
/// Boundaries on which callers may split M and N across threads without splitting a register tile
/// (a multiple of every micro-kernel's height, and the active micro-kernel's width).
int cnn_sgemm_mr(void);
/// The height of the micro-kernel that serves M rows (6 on AVX2; 12, 8 or 4 on AVX-512): a finer boundary for
/// splitting few rows, where shares of 24 would be unequal.
int cnn_sgemm_mr_for(int M);
int cnn_sgemm_nr(void);

/// The GEMM shapes a workload sends, for the benchmark that lists "the shapes the layers produce": between
/// cnn_gemm_trace_begin and cnn_gemm_trace_end, each cnn_gemm_trace call (made by the engine's GEMM entry points,
/// once per product as the caller sees it, before any split over threads) counts its shape. Costs one atomic load
/// per GEMM when off.
typedef struct {
    int trans_a, trans_b, m, n, k, threads;
    long calls;
} cnn_gemm_shape;
void cnn_gemm_trace_begin(void);
void cnn_gemm_trace(int trans_a, int trans_b, int M, int N, int K, int threads);
/// Stops tracing; copies up to `capacity` distinct shapes, in the order first seen, and returns how many there were.
int cnn_gemm_trace_end(cnn_gemm_shape *shapes, int capacity);

// ---- Convolution lowering ----------------------------------------------------------------------

/// One image x[C,H,W] to columns col[C*KH*KW, OH*OW]; padding reads as zero. Rows of col are `ldcol` apart
/// (ldcol >= OH*OW), so that several images can sit side by side in one column matrix.
void cnn_im2col(const float *x, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                int OH, int OW, float *col, int ldcol);
/// Adds columns col[C*KH*KW, OH*OW] (rows `ldcol` apart) back into dx[C,H,W] (accumulated, not overwritten).
void cnn_col2im(const float *col, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                int OH, int OW, float *dx, int ldcol);

/// Direct convolution of one image, the oracle for im2col + GEMM: y[CO,OH,OW] = w * x + b.
/// groups divides C and CO; w is [CO, C/groups, KH, KW]; b may be NULL.
void cnn_conv2d_naive(const float *x, int C, int H, int W, const float *w, const float *b, int CO, int groups,
                      int KH, int KW, int SH, int SW, int PH, int PW, int OH, int OW, float *y);

// ---- Winograd on 6x6 tiles: F(4x4, 3x3) and F(2x2, 5x5); R x R kernels, stride 1, one group ------------------

/// Whether Winograd serves R x R kernels (3 and 5).
int cnn_winograd_available(int R);
/// Floats in a transformed filter: 36 * C * CO.
size_t cnn_winograd_filter_size(int C, int CO);
/// w [CO, C, R, R] to u [36][CO][C]; with flip, the filter of the input gradient (each R x R turned by 180 degrees,
/// input and output channels exchanged) to u [36][C][CO].
void cnn_winograd_transform_filter(const float *w, int CO, int C, int R, int flip, float *u);
/// y [N, CO, OH, OW] = the R x R stride-1 convolution of x [N, C, H, W] with the filter u transformed by
/// cnn_winograd_transform_filter, plus bias (or NULL), then max(0, .) when `relu` is non-zero (a fused ReLU); padding
/// (top PT, left PL) reads as zero. Runs on `threads`; the result does not depend on their number. Its naive twin is
/// cnn_conv2d_naive.
void cnn_winograd_conv(const float *x, int N, int C, int H, int W, const float *u, const float *bias, int relu, int CO,
                       int R, int PT, int PL, int OH, int OW, float *y, int threads);
/// Floats in a transformed filter packed for the GEMMs (cnn_winograd_pack_filter).
size_t cnn_winograd_packed_filter_size(int C, int CO);
/// u [36][CO][C] (cnn_winograd_transform_filter) packed for the 36 GEMMs: what cnn_winograd_conv does on each call,
/// done once, so that inference with unchanged weights can keep it (cnn_winograd_conv_packed).
void cnn_winograd_pack_filter(const float *u, int C, int CO, float *packed, int threads);
/// w [CO, C, R, R] transformed (with flip as cnn_winograd_transform_filter, into the calling thread's buffer) and
/// packed: the filter cnn_winograd_conv_packed takes, with C and CO exchanged for flip.
void cnn_winograd_prepare_filter(const float *w, int CO, int C, int R, int flip, float *packed, int threads);
/// cnn_winograd_conv with the filter packed by cnn_winograd_pack_filter and the output finished as
/// y = y * scale[o] + shift[o] (scale NULL: 1; shift NULL: 0), then max(0, .) with `relu`: a bias, or a batch norm
/// folded into the convolution at inference.
void cnn_winograd_conv_packed(const float *x, int N, int C, int H, int W, const float *packed, const float *scale,
                              const float *shift, int relu, int CO, int R, int PT, int PL, int OH, int OW, float *y,
                              int threads);
/// dw [CO, C, R, R] += the weight gradient of that convolution for dy [N, CO, OH, OW], computed in the transformed
/// domain (dU = sum over tiles of (A dy A^T) (B^T x B), then G^T dU G). Its naive twin is cnn_conv2d_weight_gradient_naive.
void cnn_winograd_weight_gradient(const float *x, int N, int C, int H, int W, const float *dy, int CO, int R, int PT,
                                  int PL, int OH, int OW, float *dw, int threads);

// ---- Direct convolution (few input taps, stride 1, no padding, one group) ----------------------------------

/// Whether the direct kernels serve this shape with the active instruction set (AVX-512 or AVX2; C*KH*KW <= 75;
/// OW >= 8).
int cnn_conv2d_direct_available(int C, int KH, int KW, int OW);
/// The same for a given instruction set (one this CPU has), so that each path can be tested on a wider machine.
int cnn_conv2d_direct_available_isa(cnn_isa isa, int C, int KH, int KW, int OW);
/// y[CO,OH,OW] = w * x + b for one image (b may be NULL), then max(0, .) when `relu` is non-zero (a fused ReLU).
void cnn_conv2d_direct_forward(const float *x, int C, int H, int W, const float *w, const float *bias, int relu, int CO,
                               int KH, int KW, int OH, int OW, float *y);
/// dw[CO,C,KH,KW] += the correlation of dy[CO,OH,OW] with x[C,H,W] for one image.
void cnn_conv2d_direct_weight_gradient(const float *x, int C, int H, int W, const float *dy, int CO, int KH, int KW,
                                       int OH, int OW, float *dw);
/// The two with a given instruction set (the naive convolution where it has no direct path).
void cnn_conv2d_direct_forward_isa(cnn_isa isa, const float *x, int C, int H, int W, const float *w, const float *bias,
                                   int relu, int CO, int KH, int KW, int OH, int OW, float *y);
void cnn_conv2d_direct_weight_gradient_isa(cnn_isa isa, const float *x, int C, int H, int W, const float *dy, int CO,
                                           int KH, int KW, int OH, int OW, float *dw);
/// Whether the forward kernel vectorised over output channels serves this shape (stride 1, no padding, one group)
/// with the active instruction set: AVX2, fewer than 16 input channels, 76 to 512 taps (C*KH*KW), at least 16
/// output channels (LeNet's conv2). Its backward pass is the lowered one.
int cnn_conv2d_direct_channels_available(int C, int KH, int KW, int CO);
int cnn_conv2d_direct_channels_available_isa(cnn_isa isa, int C, int KH, int KW, int CO);
/// y[CO,OH,OW] = w * x + b for one image (b may be NULL), max(0, .) with `relu`: 16 output channels by 6 positions
/// at a time. The _isa form runs it with AVX2 on any x86 machine that has AVX2 (the naive convolution elsewhere).
void cnn_conv2d_direct_channels_forward(const float *x, int C, int H, int W, const float *w, const float *bias, int relu,
                                        int CO, int KH, int KW, int OH, int OW, float *y);
void cnn_conv2d_direct_channels_forward_isa(cnn_isa isa, const float *x, int C, int H, int W, const float *w,
                                            const float *bias, int relu, int CO, int KH, int KW, int OH, int OW, float *y);
/// dw[CO,C,KH,KW] += the correlation of dy[N,CO,OH,OW] with x[N,C,H,W], summed over the N images: 16 output channels
/// by 6 taps at a time (AVX2; the naive twin elsewhere), the weight gradient of the shapes above.
void cnn_conv2d_direct_channels_weight_gradient(const float *x, int N, int C, int H, int W, const float *dy, int CO, int KH,
                                                int KW, int OH, int OW, float *dw);
void cnn_conv2d_direct_channels_weight_gradient_isa(cnn_isa isa, const float *x, int N, int C, int H, int W, const float *dy,
                                                    int CO, int KH, int KW, int OH, int OW, float *dw);
/// The naive twin of the weight gradient, for any stride, padding and groups.
void cnn_conv2d_weight_gradient_naive(const float *x, int C, int H, int W, const float *dy, int CO, int groups,
                                      int KH, int KW, int SH, int SW, int PH, int PW, int OH, int OW, float *dw);

// ---- Pooling (one plane at a time: planes = N*C) -------------------------------------------------

/// Max pooling; windows clipped to the input (padding never wins). argmax receives the flat input index, or is NULL
/// at inference, when nobody needs it.
void cnn_maxpool_forward(const float *x, int planes, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                         int OH, int OW, float *y, int32_t *argmax);
/// The same with a given instruction set (one the CPU has; the portable loops otherwise), for the tests.
void cnn_maxpool_forward_isa(cnn_isa isa, const float *x, int planes, int H, int W, int KH, int KW, int SH, int SW, int PH,
                             int PW, int OH, int OW, float *y, int32_t *argmax);
/// The general loop, twin of the 2x2 stride-2 fast path: the first maximum in row-major window order wins, a NaN wins.
void cnn_maxpool_forward_naive(const float *x, int planes, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                               int OH, int OW, float *y, int32_t *argmax);
void cnn_maxpool_backward(const float *dy, const int32_t *argmax, int planes, int H, int W, int OH, int OW, float *dx);
/// Average pooling; count_include_pad as in PyTorch's default (divide by the window clipped to the padded input).
void cnn_avgpool_forward(const float *x, int planes, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                         int OH, int OW, int count_include_pad, float *y);
void cnn_avgpool_backward(const float *dy, int planes, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                          int OH, int OW, int count_include_pad, float *dx);

// ---- Element-wise ------------------------------------------------------------------------------

void cnn_relu_forward(const float *x, float *y, size_t n);
/// dx = dy where the ReLU's output y is positive, else 0.
void cnn_relu_backward(const float *y, const float *dy, float *dx, size_t n);
/// dy = dy where y > 0, else 0, in place (the derivative of a ReLU fused into the layer that wrote y).
void cnn_relu_mask(const float *y, float *dy, size_t n);
/// y[n, c, :] += bias[c] over `images` images of C planes of P elements (bias may be NULL), then max(0, .) when
/// `relu` is non-zero: a layer's bias and its fused ReLU in one pass.
void cnn_add_channel_bias(float *y, const float *bias, int images, int C, int P, int relu);
/// y[n, c, :] = y[n, c, :] * scale[c] + shift[c] (scale NULL: 1; shift NULL: 0), then max(0, .) with `relu`: a bias,
/// or a batch norm folded into the layer before it at inference, and the fused ReLU, in one pass.
void cnn_channel_scale_shift(float *y, const float *scale, const float *shift, int images, int C, int P, int relu);
/// sums[c] += the sum of dy[n, c, :] over `images` images (the bias gradient).
void cnn_accumulate_channel_sums(const float *dy, float *sums, int images, int C, int P);
/// target += source.
void cnn_add(float *target, const float *source, size_t n);
/// out = a * b, element by element.
void cnn_multiply(const float *a, const float *b, float *out, size_t n);
/// Dropout's training pass: mask[i] = 1 / keep where element i's uniform number in [0, 1) is below `keep`, else 0,
/// and y = x * mask. The numbers come from 16 xoshiro256** generators run in lockstep, lane l seeded from seeds[l]
/// with SplitMix64 as RandomGenerator(seed:) does, element i taking lane i % 16's next number's top 24 bits.
void cnn_dropout_forward(const float *x, float *y, float *mask, size_t n, float keep, const uint64_t seeds[16]);
/// Softmax cross-entropy of n rows of logits against targets that put `on` at the row's label and `off` elsewhere
/// (label smoothing: off = epsilon / classes, on = 1 - epsilon + off): returns the summed loss, and writes the gradient
/// of the mean loss when `gradient` is not NULL. The exponentials are a vectorised polynomial (about 1 ulp).
float cnn_softmax_cross_entropy(const float *logits, const int32_t *labels, int n, int classes, float on, float off,
                                float *gradient);
/// 1 when none of the n values is NaN or infinite, else 0.
int cnn_all_finite(const float *x, size_t n);
/// PyTorch's SGD: g = grad + wd * w; v = momentum * v + g; w -= lr * (nesterov ? g + momentum * v : v).
/// velocity may be NULL when momentum is 0.
void cnn_sgd_update(float *w, const float *g, float *velocity, size_t n, float lr, float momentum,
                    float weight_decay, int nesterov);
/// Adam with bias correction folded into step_size = lr / (1 - beta1^t) and 1 / sqrt(1 - beta2^t).
void cnn_adam_update(float *w, const float *g, float *m, float *v, size_t n, float step_size, float beta1, float beta2,
                     float epsilon, float inverse_sqrt_correction2, float weight_decay);

#ifdef __cplusplus
}
#endif
#endif
