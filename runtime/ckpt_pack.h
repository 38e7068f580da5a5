/*
 * ckpt_pack.h — a checkpoint (ckpt.h) as bytes in memory, to send to another process of the same machine type:
 * meta-training under mpirun gathers every rank's inner runs to rank 0, which writes the one checkpoint file
 * (meta.c). Native byte order; float data 4-byte aligned relative to where the packing started (a buffer that
 * starts 8-byte aligned keeps it so).
 */
#ifndef CELO_CKPT_PACK_H
#define CELO_CKPT_PACK_H

#include "ckpt.h"
#include "sbuf.h"

/* Appends c (tensor names, shapes and data; metadata) to b (b->oom on failure). */
void celo_ckpt_pack(const celo_ckpt *c, sbuf *b);
/* Reads the checkpoint packed at *p (bytes up to end) into c (initialized here); its tensors' data points into
 * the bytes, which must outlive c. Advances *p past it. 0, or -1 on malformed bytes or out of memory. */
int celo_ckpt_unpack(const unsigned char **p, const unsigned char *end, celo_ckpt *c);

/* Helpers for records around packed checkpoints: an int32, and a string (its length, its bytes and a NUL). */
void celo_pack_i32(sbuf *b, int32_t v);
void celo_pack_str(sbuf *b, const char *s);
int celo_unpack_i32(const unsigned char **p, const unsigned char *end, int32_t *v);
int celo_unpack_str(const unsigned char **p, const unsigned char *end, const char **s);

#endif
