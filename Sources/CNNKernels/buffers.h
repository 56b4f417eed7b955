// Kernel-internal: per-thread scratch buffers that grow on demand and are kept, so that after the first call of a
// shape a kernel allocates nothing. Not part of the public header.
#ifndef CNN_BUFFERS_H
#define CNN_BUFFERS_H
#include <stddef.h>

/// `*buffer`, grown to `count` floats (64-byte aligned) if `*capacity` is smaller, and kept; aborts if memory runs out.
float *cnn_reserve(float **buffer, size_t *capacity, size_t count);

#endif
