// Batch normalisation's per-channel loops (Ioffe and Szegedy 2015, algorithm 1 and its gradient), with an optional
// ReLU fused after it. Legend: x[N, C, P] row-major, c the channel, m = N * P values per channel,
// xhat = (x - mean) * inv with inv = 1 / sqrt(variance + epsilon).
//
// Where `y` (the layer's rectified output) is given, the gradient dy is first masked by y > 0: the derivative of
// the ReLU fused into the layer.
#ifndef CNN_BATCHNORM_H
#define CNN_BATCHNORM_H

#ifdef __cplusplus
extern "C" {
#endif

/// The mean and the biased variance of channel c. Its naive twin adds every value in double, in two passes.
void cnn_channel_moments(const float *x, int N, int C, int P, int c, double *mean, double *variance);
void cnn_channel_moments_naive(const float *x, int N, int C, int P, int c, double *mean, double *variance);
/// y = a x + b over channel c, then max(0, .) when `relu` is non-zero.
void cnn_channel_affine(const float *x, float *y, int N, int C, int P, int c, float a, float b, int relu);
/// The sums over channel c of g and of g * xhat, g = dy (masked by y > 0 when y is not NULL). Its naive twin
/// adds every value in double.
void cnn_bn_gradient_sums(const float *x, const float *dy, const float *y, int N, int C, int P, int c, float mean,
                          float inv, double *sum_dy, double *sum_dy_xhat);
void cnn_bn_gradient_sums_naive(const float *x, const float *dy, const float *y, int N, int C, int P, int c, float mean,
                                float inv, double *sum_dy, double *sum_dy_xhat);
/// dx = a (g - mean_dy - xhat * mean_dy_xhat) over channel c, g as above (mean_dy = mean_dy_xhat = 0 with frozen
/// statistics).
void cnn_bn_input_gradient(const float *x, const float *dy, const float *y, float *dx, int N, int C, int P, int c,
                           float mean, float inv, float a, float mean_dy, float mean_dy_xhat);

#ifdef __cplusplus
}
#endif

#endif
