// C shims over libpng and libjpeg for decoding PNG/JPEG images from memory and encoding PNG to memory.
// Each returns 0 on success; on failure it returns non-zero and writes a human-readable reason into
// `error` (at most `error_capacity` bytes, NUL-terminated). Nothing is ever printed, and a corrupt
// file never terminates the process.
#ifndef CCODECS_IMAGE_H
#define CCODECS_IMAGE_H
#include <stddef.h>
#include <stdint.h>

/// Decodes a PNG or JPEG (told apart by their magic bytes) into 8-bit interleaved pixels, row-major,
/// `*channels` bytes per pixel: 1 (grey) or 3 (RGB). PNG palette, 16-bit and alpha images are converted
/// (alpha is composited over white); JPEG CMYK/YCCK is converted to RGB. Images with more than
/// `max_pixels` pixels, or with none, are rejected before any pixel memory is allocated; truncated
/// files are errors. On success `*pixels` is malloc'ed and owned by the caller (free()).
int ccodecs_decode_image(const uint8_t *data, size_t length, size_t max_pixels,
                         uint8_t **pixels, int *width, int *height, int *channels,
                         char *error, size_t error_capacity);

/// Checks a PNG or JPEG without decoding its pixels: the signature, the header (through libpng and libjpeg),
/// the dimensions against `max_pixels`, and that the file is not cut short (a PNG reaches its IEND chunk, a
/// JPEG ends with its end-of-image marker). Sets the size and the channels a decode would give (1 or 3).
/// Corrupt compressed data in the middle of a file is only found by decoding it.
int ccodecs_image_info(const uint8_t *data, size_t length, size_t max_pixels,
                       int *width, int *height, int *channels, char *error, size_t error_capacity);

/// Encodes 8-bit interleaved pixels (`channels` 1 = grey or 3 = RGB, rows top to bottom, no padding)
/// as a PNG in memory. On success `*output` is malloc'ed and owned by the caller (free()).
int ccodecs_encode_png(const uint8_t *pixels, int width, int height, int channels,
                       uint8_t **output, size_t *output_length, char *error, size_t error_capacity);

#endif
