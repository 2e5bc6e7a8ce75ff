/* pbwire.h: the protobuf primitive the C extensions share (gewtui/pbwire.py is its Python
 * side): a base-128 varint, as SerializeToString writes one. */
#ifndef GEWTUI_PBWIRE_H
#define GEWTUI_PBWIRE_H
#include <stdint.h>

/* Writes v into out (at most 10 bytes); returns how many bytes it took. */
static inline int pb_varint(uint8_t out[10], uint64_t v)
{
    int k = 0;
    do {
        uint8_t c = v & 0x7f;
        v >>= 7;
        out[k++] = c | (v ? 0x80 : 0);
    } while (v);
    return k;
}
#endif
