// Convolution lowered to GEMM: im2col turns the receptive fields of one image into columns, col2im adds
// them back (the adjoint, used by the backward pass). The direct convolution is their naive twin.
//
// Legend: C = input channels, H x W = input size, KH x KW = kernel, SH/SW = stride, PH/PW = top/left padding,
// OH x OW = output size; col has C*KH*KW rows (channel-major, then kernel row, then kernel column) and OH*OW columns.
#include "cnn_kernels.h"
#include <string.h>

/// The output columns [begin, end) whose input column ow*SW - PW + kw lies inside [0, W).
static void valid_range(int OW, int SW, int PW, int kw, int W, int *begin, int *end) {
    int offset = kw - PW;  // input column of ow = 0
    int b = offset >= 0 ? 0 : (-offset + SW - 1) / SW;
    int e = (W - offset + SW - 1) / SW;  // first ow with input column >= W
    if (W - offset <= 0) e = 0;
    if (e > OW) e = OW;
    if (b > e) b = e;
    *begin = b;
    *end = e;
}

void cnn_im2col(const float *x, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                int OH, int OW, float *col, int ldcol) {
    for (int c = 0; c < C; c++) {
        const float *plane = x + (size_t)c * H * W;
        for (int kh = 0; kh < KH; kh++)
            for (int kw = 0; kw < KW; kw++) {
                int begin, end;
                valid_range(OW, SW, PW, kw, W, &begin, &end);
                float *row_start = col;
                for (int oh = 0; oh < OH; oh++, col += OW) {
                    int ih = oh * SH - PH + kh;
                    if (ih < 0 || ih >= H) { memset(col, 0, sizeof(float) * (size_t)OW); continue; }
                    const float *row = plane + (size_t)ih * W + kw - PW;
                    for (int ow = 0; ow < begin; ow++) col[ow] = 0;
                    if (SW == 1) memcpy(col + begin, row + begin, sizeof(float) * (size_t)(end - begin));
                    else for (int ow = begin; ow < end; ow++) col[ow] = row[(size_t)ow * SW];
                    for (int ow = end; ow < OW; ow++) col[ow] = 0;
                }
                col = row_start + ldcol;
            }
    }
}

void cnn_col2im(const float *col, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                int OH, int OW, float *dx, int ldcol) {
    for (int c = 0; c < C; c++) {
        float *plane = dx + (size_t)c * H * W;
        for (int kh = 0; kh < KH; kh++)
            for (int kw = 0; kw < KW; kw++) {
                int begin, end;
                valid_range(OW, SW, PW, kw, W, &begin, &end);
                const float *row_start = col;
                for (int oh = 0; oh < OH; oh++, col += OW) {
                    int ih = oh * SH - PH + kh;
                    if (ih < 0 || ih >= H) continue;
                    float *row = plane + (size_t)ih * W + kw - PW;
                    for (int ow = begin; ow < end; ow++) row[(size_t)ow * SW] += col[ow];
                }
                col = row_start + ldcol;
            }
    }
}

void cnn_conv2d_naive(const float *x, int C, int H, int W, const float *w, const float *b, int CO, int groups,
                      int KH, int KW, int SH, int SW, int PH, int PW, int OH, int OW, float *y) {
    int cg = C / groups, cog = CO / groups;
    for (int co = 0; co < CO; co++) {
        int g = co / cog;
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                double sum = b ? b[co] : 0;
                for (int ci = 0; ci < cg; ci++)
                    for (int kh = 0; kh < KH; kh++)
                        for (int kw = 0; kw < KW; kw++) {
                            int ih = oh * SH - PH + kh, iw = ow * SW - PW + kw;
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                            sum += (double)x[((size_t)(g * cg + ci) * H + ih) * W + iw] *
                                   w[(((size_t)co * cg + ci) * KH + kh) * KW + kw];
                        }
                y[((size_t)co * OH + oh) * OW + ow] = (float)sum;
            }
    }
}
