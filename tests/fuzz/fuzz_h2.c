/* fuzz_h2.c — libFuzzer driver for the HTTP/2 frame input path: the input is what a server sends
 * (after its preface) to a session carrying one GET, fed through nghttp2 and h2.c's callbacks
 * (headers, limits, bodies and their decoding, resets, GOAWAY, PING, retries). */
#include <stdint.h>

#include "h2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return h2_fuzz_input(data, size);
}
