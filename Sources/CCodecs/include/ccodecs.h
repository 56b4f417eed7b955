// C shims over zlib, libpng and libjpeg. Each returns 0 on success; on failure it returns non-zero and
// writes a human-readable reason into `error` (at most `error_capacity` bytes, NUL-terminated).
#ifndef CCODECS_H
#define CCODECS_H
#include <stddef.h>
#include <stdint.h>

/// Inflates a gzip (or zlib) stream. On success `*output` is malloc'ed and owned by the caller (free()).
int ccodecs_gunzip(const uint8_t *input, size_t input_length, size_t max_output_length,
                   uint8_t **output, size_t *output_length, char *error, size_t error_capacity);

/// Inflates a raw deflate stream (a zip entry's, method 8) into `output`, which must receive exactly
/// `output_length` bytes: fewer, or more, is an error.
int ccodecs_inflate_raw(const uint8_t *input, size_t input_length, uint8_t *output, size_t output_length,
                        char *error, size_t error_capacity);

#endif
