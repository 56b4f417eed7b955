// gzip inflation over zlib, with errors reported as text rather than as crashes.
#include "ccodecs.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int ccodecs_gunzip(const uint8_t *input, size_t input_length, size_t max_output_length,
                   uint8_t **output, size_t *output_length, char *error, size_t error_capacity) {
    *output = NULL;
    *output_length = 0;
    z_stream stream;
    memset(&stream, 0, sizeof stream);
    // 15 + 32: the largest window, and automatic detection of a gzip or zlib header.
    if (inflateInit2(&stream, 15 + 32) != Z_OK) {
        snprintf(error, error_capacity, "zlib could not be initialised");
        return 1;
    }
    size_t capacity = input_length * 4 + 1024;
    if (capacity > max_output_length) capacity = max_output_length;
    uint8_t *buffer = malloc(capacity);
    if (!buffer) { inflateEnd(&stream); snprintf(error, error_capacity, "out of memory"); return 1; }
    stream.next_in = (Bytef *)input;
    size_t consumed = 0, produced = 0;
    int status = Z_OK;
    while (status != Z_STREAM_END) {
        if (produced == capacity) {
            if (capacity >= max_output_length) {
                free(buffer); inflateEnd(&stream);
                snprintf(error, error_capacity, "decompressed data exceeds %zu bytes", max_output_length);
                return 1;
            }
            size_t grown = capacity * 2 > max_output_length ? max_output_length : capacity * 2;
            uint8_t *bigger = realloc(buffer, grown);
            if (!bigger) { free(buffer); inflateEnd(&stream); snprintf(error, error_capacity, "out of memory"); return 1; }
            buffer = bigger; capacity = grown;
        }
        size_t in_chunk = input_length - consumed > (1u << 30) ? (1u << 30) : input_length - consumed;
        size_t out_chunk = capacity - produced > (1u << 30) ? (1u << 30) : capacity - produced;
        stream.next_in = (Bytef *)(input + consumed);
        stream.avail_in = (uInt)in_chunk;
        stream.next_out = buffer + produced;
        stream.avail_out = (uInt)out_chunk;
        status = inflate(&stream, Z_NO_FLUSH);
        consumed += in_chunk - stream.avail_in;
        produced += out_chunk - stream.avail_out;
        if (status == Z_STREAM_END) break;
        if (status == Z_BUF_ERROR && consumed == input_length && stream.avail_out != 0) {
            free(buffer); inflateEnd(&stream);
            snprintf(error, error_capacity, "truncated: the compressed stream ends early (after %zu bytes of output)", produced);
            return 1;
        }
        if (status != Z_OK && status != Z_BUF_ERROR) {
            free(buffer);
            snprintf(error, error_capacity, "corrupt compressed data (%s)", stream.msg ? stream.msg : "zlib error");
            inflateEnd(&stream);
            return 1;
        }
    }
    inflateEnd(&stream);
    *output = buffer;
    *output_length = produced;
    return 0;
}

int ccodecs_inflate_raw(const uint8_t *input, size_t input_length, uint8_t *output, size_t output_length,
                        char *error, size_t error_capacity) {
    z_stream stream;
    memset(&stream, 0, sizeof stream);
    // -15: a raw deflate stream (no zlib or gzip header), the largest window.
    if (inflateInit2(&stream, -15) != Z_OK) {
        snprintf(error, error_capacity, "zlib could not be initialised");
        return 1;
    }
    size_t consumed = 0, produced = 0;
    int status = Z_OK;
    while (status != Z_STREAM_END) {
        size_t in_chunk = input_length - consumed > (1u << 30) ? (1u << 30) : input_length - consumed;
        size_t out_chunk = output_length - produced > (1u << 30) ? (1u << 30) : output_length - produced;
        uint8_t spare;
        stream.next_in = (Bytef *)(input + consumed);
        stream.avail_in = (uInt)in_chunk;
        // Once the output is full, one spare byte tells a stream that would go on from one that ends here.
        stream.next_out = out_chunk ? output + produced : &spare;
        stream.avail_out = out_chunk ? (uInt)out_chunk : 1;
        status = inflate(&stream, Z_NO_FLUSH);
        if (!out_chunk && stream.avail_out == 0) {
            inflateEnd(&stream);
            snprintf(error, error_capacity, "inflates to more than the %zu bytes its header gives", output_length);
            return 1;
        }
        consumed += in_chunk - stream.avail_in;
        if (out_chunk) produced += out_chunk - stream.avail_out;
        if (status == Z_STREAM_END) break;
        if (status == Z_BUF_ERROR) {
            inflateEnd(&stream);
            snprintf(error, error_capacity, "truncated: the compressed data ends after %zu of %zu bytes", produced, output_length);
            return 1;
        }
        if (status != Z_OK && status != Z_BUF_ERROR) {
            snprintf(error, error_capacity, "corrupt compressed data (%s)", stream.msg ? stream.msg : "zlib error");
            inflateEnd(&stream);
            return 1;
        }
    }
    inflateEnd(&stream);
    if (produced != output_length) {
        snprintf(error, error_capacity, "inflates to %zu bytes, its header gives %zu", produced, output_length);
        return 1;
    }
    return 0;
}
