/*
 * buf.h - a growable byte buffer that refuses to grow past its cap.
 *
 * Modelled on curl's dynbuf: every buffer that holds bytes from outside
 * (etcd replies, uploads, packets) states its limit when it is made, and
 * appending past it fails with IOTCA_ETOOBIG instead of allocating.
 * The contents are always NUL-terminated (the NUL is not counted in len
 * and not in the cap). Not thread-safe; the owner serialises access.
 */
#ifndef IOTCA_BUF_H
#define IOTCA_BUF_H

#include <stddef.h>

#include "err/err.h"

typedef struct iotca_buf {
	char *data;  /* NULL until the first append */
	size_t len;  /* bytes in use */
	size_t size; /* bytes allocated */
	size_t cap;  /* len may never exceed this */
} iotca_buf;

/* Prepares an empty buffer whose length may never exceed cap. */
void iotca_buf_init(iotca_buf *b, size_t cap);

/* Frees the memory and leaves an empty buffer with the same cap. */
void iotca_buf_free(iotca_buf *b);

/* Empties the buffer, keeping its memory. */
void iotca_buf_reset(iotca_buf *b);

/* Appends n bytes. IOTCA_ETOOBIG past the cap, IOTCA_ENOMEM. */
iotca_err iotca_buf_append(iotca_buf *b, const void *p, size_t n);

/* Appends a NUL-terminated string. */
iotca_err iotca_buf_append_str(iotca_buf *b, const char *s);

/* Appends printf-style formatted text. */
iotca_err iotca_buf_printf(iotca_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Hands the memory to the caller (free() it) and empties the buffer. */
char *iotca_buf_take(iotca_buf *b, size_t *len);

#endif /* IOTCA_BUF_H */
