// PNG and JPEG decoding, and PNG encoding, over libpng's simplified API and libjpeg(-turbo), with
// errors reported as text rather than as crashes, exits or messages on stderr.
#include "ccodecs_image.h"
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <png.h>
#include <jpeglib.h>
#include <jerror.h>

static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
static const uint8_t jpeg_signature[3] = {0xFF, 0xD8, 0xFF};

/// Fails (returns non-zero) if a width x height image is empty or larger than max_pixels.
static int check_dimensions(uint64_t width, uint64_t height, size_t max_pixels,
                            char *error, size_t error_capacity) {
    if (width == 0 || height == 0) {
        snprintf(error, error_capacity, "image has no pixels (%llux%llu)",
                 (unsigned long long)width, (unsigned long long)height);
        return 1;
    }
    if (width * height > max_pixels) {
        snprintf(error, error_capacity, "image is too large (%llux%llu, more than %zu pixels)",
                 (unsigned long long)width, (unsigned long long)height, max_pixels);
        return 1;
    }
    return 0;
}

// MARK: - PNG

/// Whether the chunks after the signature lead to a complete IEND chunk. libpng's simplified API stops
/// reading after the image data, so without this a file cut off after its pixels would pass as whole.
static int png_reaches_end(const uint8_t *data, size_t length) {
    size_t offset = sizeof png_signature;
    while (length - offset >= 12) { // each chunk: length (4), type (4), data, CRC (4)
        uint32_t chunk_length = (uint32_t)data[offset] << 24 | (uint32_t)data[offset + 1] << 16 |
                                (uint32_t)data[offset + 2] << 8 | (uint32_t)data[offset + 3];
        if (memcmp(data + offset + 4, "IEND", 4) == 0) return 1;
        if (chunk_length > length - offset - 12) return 0;
        offset += 12 + (size_t)chunk_length;
    }
    return 0;
}

/// Reads a PNG's header into `image` after checking the file is whole, and checks its size: what decoding and
/// `ccodecs_image_info` both start with. On failure `image` is freed and `error` says why.
static int png_open(const uint8_t *data, size_t length, size_t max_pixels, png_image *image,
                    char *error, size_t error_capacity) {
    if (!png_reaches_end(data, length)) {
        snprintf(error, error_capacity, "invalid PNG: truncated (the data ends before the IEND chunk)");
        return 1;
    }
    memset(image, 0, sizeof *image);
    image->version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(image, data, length)) {
        snprintf(error, error_capacity, "invalid PNG: %s", image->message);
        png_image_free(image);
        return 1;
    }
    if (check_dimensions(image->width, image->height, max_pixels, error, error_capacity)) {
        png_image_free(image);
        return 1;
    }
    return 0;
}

static int decode_png(const uint8_t *data, size_t length, size_t max_pixels,
                      uint8_t **pixels, int *width, int *height, int *channels,
                      char *error, size_t error_capacity) {
    png_image image;
    if (png_open(data, length, max_pixels, &image, error, error_capacity)) return 1;
    // Keep colour if the file has any (palette entries included); everything becomes 8-bit, alpha removed.
    int output_channels = (image.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
    image.format = output_channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    // 16-bit files without gamma information are sRGB in practice, not the linear data libpng assumes.
    image.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
    uint8_t *buffer = malloc(PNG_IMAGE_SIZE(image));
    if (!buffer) {
        png_image_free(&image);
        snprintf(error, error_capacity, "out of memory");
        return 1;
    }
    const png_color white = {255, 255, 255};
    if (!png_image_finish_read(&image, &white, buffer, 0, NULL)) {
        snprintf(error, error_capacity, "invalid PNG: %s", image.message);
        png_image_free(&image);
        free(buffer);
        return 1;
    }
    *pixels = buffer;
    *width = (int)image.width;
    *height = (int)image.height;
    *channels = output_channels;
    return 0;
}

int ccodecs_encode_png(const uint8_t *pixels, int width, int height, int channels,
                       uint8_t **output, size_t *output_length, char *error, size_t error_capacity) {
    *output = NULL;
    *output_length = 0;
    if (channels != 1 && channels != 3) {
        snprintf(error, error_capacity, "cannot encode %d channels as PNG (only 1 or 3)", channels);
        return 1;
    }
    if (width <= 0 || height <= 0) {
        snprintf(error, error_capacity, "cannot encode an image with no pixels (%dx%d)", width, height);
        return 1;
    }
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = (png_uint_32)width;
    image.height = (png_uint_32)height;
    image.format = channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    // First pass measures, second pass writes.
    png_alloc_size_t size = 0;
    if (!png_image_write_get_memory_size(image, size, 0, pixels, 0, NULL)) {
        snprintf(error, error_capacity, "PNG encoding failed: %s", image.message);
        png_image_free(&image);
        return 1;
    }
    uint8_t *buffer = malloc(size);
    if (!buffer) {
        snprintf(error, error_capacity, "out of memory");
        return 1;
    }
    if (!png_image_write_to_memory(&image, buffer, &size, 0, pixels, 0, NULL)) {
        snprintf(error, error_capacity, "PNG encoding failed: %s", image.message);
        png_image_free(&image);
        free(buffer);
        return 1;
    }
    *output = buffer;
    *output_length = size;
    return 0;
}

// MARK: - JPEG

/// libjpeg's error manager, extended with somewhere to jump back to and the text of the failure.
struct jpeg_failure {
    struct jpeg_error_mgr manager; // must stay first: libjpeg hands back a pointer to it
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

/// Replaces libjpeg's error_exit (which prints and calls exit()): keep the message, unwind to setjmp.
static void jpeg_fail(j_common_ptr cinfo) {
    struct jpeg_failure *failure = (struct jpeg_failure *)cinfo->err;
    cinfo->err->format_message(cinfo, failure->message);
    longjmp(failure->jump, 1);
}

/// Replaces emit_message: warnings and traces are dropped, except running out of data, which libjpeg
/// would otherwise paper over by padding the image with grey.
static void jpeg_emit(j_common_ptr cinfo, int level) {
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) jpeg_fail(cinfo);
}

/// Replaces output_message, so that nothing is ever written to stderr.
static void jpeg_silence(j_common_ptr cinfo) { (void)cinfo; }

/// Converts one row of CMYK (as libjpeg returns it: inverted when the file has an Adobe marker) to RGB.
static void cmyk_to_rgb(const uint8_t *cmyk, uint8_t *rgb, size_t count, int inverted) {
    for (size_t i = 0; i < count; i++) {
        unsigned k = inverted ? cmyk[4 * i + 3] : 255u - cmyk[4 * i + 3];
        for (int c = 0; c < 3; c++) {
            unsigned ink = inverted ? cmyk[4 * i + c] : 255u - cmyk[4 * i + c];
            rgb[3 * i + c] = (uint8_t)((ink * k + 127) / 255);
        }
    }
}

static int decode_jpeg(const uint8_t *data, size_t length, size_t max_pixels,
                       uint8_t **pixels, int *width, int *height, int *channels,
                       char *error, size_t error_capacity) {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_failure failure;
    // Allocated after setjmp and freed after a longjmp, so they must not live in registers.
    uint8_t *volatile buffer = NULL;
    uint8_t *volatile cmyk_row = NULL;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&failure.manager);
    failure.manager.error_exit = jpeg_fail;
    failure.manager.emit_message = jpeg_emit;
    failure.manager.output_message = jpeg_silence;
    if (setjmp(failure.jump)) {
        snprintf(error, error_capacity, "invalid JPEG: %s", failure.message);
        jpeg_destroy_decompress(&cinfo);
        free(buffer);
        free(cmyk_row);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)length);
    jpeg_read_header(&cinfo, TRUE);
    if (check_dimensions(cinfo.image_width, cinfo.image_height, max_pixels, error, error_capacity)) {
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    int output_channels = cinfo.jpeg_color_space == JCS_GRAYSCALE ? 1 : 3;
    cinfo.out_color_space = cmyk ? JCS_CMYK : output_channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);

    size_t row_length = (size_t)cinfo.output_width * (size_t)output_channels;
    buffer = malloc(row_length * cinfo.output_height);
    if (cmyk) cmyk_row = malloc((size_t)cinfo.output_width * 4);
    if (!buffer || (cmyk && !cmyk_row)) {
        snprintf(failure.message, sizeof failure.message, "out of memory");
        longjmp(failure.jump, 1);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        uint8_t *row = buffer + (size_t)cinfo.output_scanline * row_length;
        JSAMPROW target = cmyk ? cmyk_row : row;
        if (jpeg_read_scanlines(&cinfo, &target, 1) != 1) {
            snprintf(failure.message, sizeof failure.message, "no progress reading scanlines");
            longjmp(failure.jump, 1);
        }
        if (cmyk) cmyk_to_rgb(cmyk_row, row, cinfo.output_width, cinfo.saw_Adobe_marker);
    }
    jpeg_finish_decompress(&cinfo);

    *pixels = buffer;
    *width = (int)cinfo.output_width;
    *height = (int)cinfo.output_height;
    *channels = output_channels;
    jpeg_destroy_decompress(&cinfo);
    free(cmyk_row);
    return 0;
}

// MARK: - Either

int ccodecs_decode_image(const uint8_t *data, size_t length, size_t max_pixels,
                         uint8_t **pixels, int *width, int *height, int *channels,
                         char *error, size_t error_capacity) {
    *pixels = NULL;
    *width = *height = *channels = 0;
    if (length >= sizeof png_signature && memcmp(data, png_signature, sizeof png_signature) == 0)
        return decode_png(data, length, max_pixels, pixels, width, height, channels, error, error_capacity);
    if (length >= sizeof jpeg_signature && memcmp(data, jpeg_signature, sizeof jpeg_signature) == 0)
        return decode_jpeg(data, length, max_pixels, pixels, width, height, channels, error, error_capacity);
    if (length == 0) {
        snprintf(error, error_capacity, "empty file, not a PNG or JPEG image");
        return 1;
    }
    // Name the first few bytes: they usually say what the file really is (%PDF, GIF8, <htm, ...).
    char shown[3 * 4 + 1] = "";
    size_t count = length < 4 ? length : 4, used = 0;
    for (size_t i = 0; i < count; i++)
        used += (size_t)snprintf(shown + used, sizeof shown - used, i == 0 ? "%02X" : " %02X", data[i]);
    snprintf(error, error_capacity, "not a PNG or JPEG image (starts with bytes %s)", shown);
    return 1;
}

// MARK: - Header only

/// Whether a JPEG's last bytes hold its end-of-image marker (FF D9), allowing a little trailing padding.
/// Entropy-coded data never contains FF D9, so a file cut off in its scan data lacks it.
static int jpeg_reaches_end(const uint8_t *data, size_t length) {
    size_t window = length < 4096 ? length : 4096;
    for (size_t i = length - window; i + 1 < length; i++)
        if (data[i] == 0xFF && data[i + 1] == 0xD9) return 1;
    return 0;
}

int ccodecs_image_info(const uint8_t *data, size_t length, size_t max_pixels,
                       int *width, int *height, int *channels, char *error, size_t error_capacity) {
    *width = *height = *channels = 0;
    if (length >= sizeof png_signature && memcmp(data, png_signature, sizeof png_signature) == 0) {
        png_image image;
        if (png_open(data, length, max_pixels, &image, error, error_capacity)) return 1;
        png_image_free(&image);
        *width = (int)image.width;
        *height = (int)image.height;
        *channels = (image.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
        return 0;
    }
    if (length >= sizeof jpeg_signature && memcmp(data, jpeg_signature, sizeof jpeg_signature) == 0) {
        if (!jpeg_reaches_end(data, length)) {
            snprintf(error, error_capacity, "invalid JPEG: truncated (no end-of-image marker at the end of the file)");
            return 1;
        }
        struct jpeg_decompress_struct cinfo;
        struct jpeg_failure failure;
        memset(&cinfo, 0, sizeof cinfo);
        cinfo.err = jpeg_std_error(&failure.manager);
        failure.manager.error_exit = jpeg_fail;
        failure.manager.emit_message = jpeg_emit;
        failure.manager.output_message = jpeg_silence;
        if (setjmp(failure.jump)) {
            snprintf(error, error_capacity, "invalid JPEG: %s", failure.message);
            jpeg_destroy_decompress(&cinfo);
            return 1;
        }
        jpeg_create_decompress(&cinfo);
        jpeg_mem_src(&cinfo, data, (unsigned long)length);
        jpeg_read_header(&cinfo, TRUE);
        int failed = check_dimensions(cinfo.image_width, cinfo.image_height, max_pixels, error, error_capacity);
        *width = (int)cinfo.image_width;
        *height = (int)cinfo.image_height;
        *channels = cinfo.jpeg_color_space == JCS_GRAYSCALE ? 1 : 3;
        jpeg_destroy_decompress(&cinfo);
        if (failed) *width = *height = *channels = 0;
        return failed;
    }
    // Neither: the decoder's own message names what the bytes are (it stops at the signature).
    uint8_t *pixels = NULL;
    int status = ccodecs_decode_image(data, length, max_pixels, &pixels, width, height, channels, error, error_capacity);
    free(pixels);
    return status ? status : 1;
}
