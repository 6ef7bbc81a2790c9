/*
 * buf.c - capped growable buffer.
 */
#include "buf/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_MIN_ALLOC 64

void
iotca_buf_init(iotca_buf *b, size_t cap)
{
	b->data = NULL;
	b->len = 0;
	b->size = 0;
	b->cap = cap;
}

void
iotca_buf_free(iotca_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->size = 0;
}

void
iotca_buf_reset(iotca_buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

/* Makes room for n more bytes plus the terminating NUL. */
static iotca_err
buf_reserve(iotca_buf *b, size_t n)
{
	size_t need, nsize;
	char *p;

	if (n > b->cap || b->len > b->cap - n)
		return IOTCA_ETOOBIG;
	need = b->len + n + 1;
	if (need <= b->size)
		return IOTCA_OK;
	nsize = b->size ? b->size : BUF_MIN_ALLOC;
	while (nsize < need)
		nsize = (nsize > ((size_t)-1) / 2) ? need : nsize * 2;
	if (nsize - 1 > b->cap) /* not cap + 1: that wraps for SIZE_MAX */
		nsize = b->cap + 1;
	if ((p = realloc(b->data, nsize)) == NULL)
		return IOTCA_ENOMEM;
	b->data = p;
	b->size = nsize;
	return IOTCA_OK;
}

iotca_err
iotca_buf_append(iotca_buf *b, const void *p, size_t n)
{
	iotca_err rc;

	if ((rc = buf_reserve(b, n)) != IOTCA_OK)
		return rc;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return IOTCA_OK;
}

iotca_err
iotca_buf_append_str(iotca_buf *b, const char *s)
{
	return iotca_buf_append(b, s, strlen(s));
}

iotca_err
iotca_buf_printf(iotca_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	iotca_err rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return IOTCA_EINVAL;
	if ((rc = buf_reserve(b, (size_t)n)) != IOTCA_OK)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return IOTCA_OK;
}

char *
iotca_buf_take(iotca_buf *b, size_t *len)
{
	char *p = b->data;

	if (len != NULL)
		*len = b->len;
	b->data = NULL;
	b->len = 0;
	b->size = 0;
	return p;
}
