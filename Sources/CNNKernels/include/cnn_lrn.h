// Local response normalisation across channels (Krizhevsky, Sutskever and Hinton 2012, section 3.3), as
// torch.nn.LocalResponseNorm and Caffe's LRN layer (ACROSS_CHANNELS) compute it.
//
// Legend: N images, C channels, P = H * W positions per channel plane, row-major x[N, C, P];
// n = size (channels in a window), a = alpha, b = beta, k = k.
//
//     s[c] = k + a * sum_{j = c - n/2}^{c + (n-1)/2} x[j]^2      (channels outside 0..<C read as zero)
//     y[c] = x[c] * s[c]^-b
//
// `a` is the coefficient of the window sum itself: pass alpha / n for PyTorch's and Caffe's convention, alpha for
// the AlexNet paper's. For odd n the window is centred on c; for even n it has one more channel before c than after,
// as PyTorch pads (n/2 before, (n-1)/2 after).
#ifndef CNN_LRN_H
#define CNN_LRN_H

#ifdef __cplusplus
extern "C" {
#endif

/// y[N, C, P] and the denominators' bases scale[N, C, P] (kept for the backward pass; may not be NULL).
/// Vectorised over the positions of a plane; b = 0.75 and b = 0.5 use square roots rather than powf.
void cnn_lrn_forward(const float *x, int N, int C, int P, int n, float a, float b, float k, float *y, float *scale);
/// The direct loop, each window summed afresh in double precision: the oracle for cnn_lrn_forward.
void cnn_lrn_forward_naive(const float *x, int N, int C, int P, int n, float a, float b, float k, float *y, float *scale);

/// dx from dy, given the forward's x, y and scale:
///     dx[j] = dy[j] * s[j]^-b - 2 a b x[j] * sum_{c : j in window(c)} dy[c] * y[c] / s[c]
/// (c ranges over j - (n-1)/2 .. j + n/2). dx is overwritten.
void cnn_lrn_backward(const float *x, const float *y, const float *scale, const float *dy, int N, int C, int P, int n,
                      float a, float b, float *dx);
/// The direct loop in double precision: the oracle for cnn_lrn_backward.
void cnn_lrn_backward_naive(const float *x, const float *y, const float *scale, const float *dy, int N, int C, int P,
                            int n, float a, float b, float *dx);

#ifdef __cplusplus
}
#endif
#endif
