/* fuzz_response.c — libFuzzer driver for the response path: http1.c's llhttp wrapper and decode.c.
 * The input is split at its first byte's value to exercise parsing across reads. */
#include <stdint.h>
#include <string.h>

#include "http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t split = data[0] % size;
    int decompress = data[1] & 1;
    int head = (data[1] >> 1) & 1;
    data += 2;
    size -= 2;
    if (split > size)
        split = size;
    struct http_response r;
    http_response_init(&r, 1 << 20, 16 * 1024, 64, decompress, head);
    if (http_response_feed(&r, (const char *)data, split) == 0 &&
        http_response_feed(&r, (const char *)data + split, size - split) == 0)
        (void)http_response_eof(&r);
    (void)http_response_header(&r, "content-type");
    http_response_free(&r);
    return 0;
}
