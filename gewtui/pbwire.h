/* pbwire.h: the protobuf primitives the C extensions share (gewtui/pbwire.py is their Python
 * side): a base-128 varint, as SerializeToString writes one, and a bounded output buffer. */
#ifndef GEWTUI_PBWIRE_H
#define GEWTUI_PBWIRE_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

/* An output buffer of ``cap`` bytes at ``p``: every write is checked against it. */
typedef struct { uint8_t *p; size_t n, cap; } pb_buf;

/* Appends n bytes; 0 (and nothing written) when they do not fit. */
static inline int pb_put(pb_buf *b, const void *p, size_t n)
{
    if (n > b->cap - b->n)
        return 0;
    if (n)
        memcpy(b->p + b->n, p, n);
    b->n += n;
    return 1;
}

static inline int pb_put_varint(pb_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    return pb_put(b, tmp, (size_t)pb_varint(tmp, v));
}
#endif
