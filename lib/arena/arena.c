/*
 * arena.c - region allocator: a list of chunks, freed together.
 */
#include "arena/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16
#define ARENA_CHUNK 4096

struct arena_chunk {
	struct arena_chunk *next;
	size_t size; /* usable bytes in data */
	size_t used;
	_Alignas(ARENA_ALIGN) unsigned char data[];
};

struct iotca_arena {
	struct arena_chunk *head; /* most recent chunk first */
	size_t used;              /* bytes handed out */
	size_t cap;
};

iotca_arena *
iotca_arena_create(size_t cap)
{
	iotca_arena *a = calloc(1, sizeof(*a));

	if (a != NULL)
		a->cap = cap;
	return a;
}

void
iotca_arena_destroy(iotca_arena *a)
{
	struct arena_chunk *c, *next;

	if (a == NULL)
		return;
	for (c = a->head; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	free(a);
}

void *
iotca_arena_alloc(iotca_arena *a, size_t n)
{
	struct arena_chunk *c = a->head;
	size_t need, csize;
	void *p;

	if (n == 0)
		n = 1;
	if (n > SIZE_MAX - ARENA_ALIGN)
		return NULL;
	need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (need > a->cap || a->used > a->cap - need)
		return NULL;
	if (c == NULL || c->size - c->used < need) {
		csize = need > ARENA_CHUNK ? need : ARENA_CHUNK;
		if (csize > SIZE_MAX - sizeof(*c) ||
		    (c = malloc(sizeof(*c) + csize)) == NULL)
			return NULL;
		c->size = csize;
		c->used = 0;
		c->next = a->head;
		a->head = c;
	}
	p = c->data + c->used;
	c->used += need;
	a->used += need;
	return p;
}

void *
iotca_arena_zalloc(iotca_arena *a, size_t n)
{
	void *p = iotca_arena_alloc(a, n);

	if (p != NULL)
		memset(p, 0, n);
	return p;
}

char *
iotca_arena_strndup(iotca_arena *a, const char *p, size_t n)
{
	char *s;

	if (n == SIZE_MAX || (s = iotca_arena_alloc(a, n + 1)) == NULL)
		return NULL;
	if (n > 0)
		memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

char *
iotca_arena_strdup(iotca_arena *a, const char *s)
{
	return iotca_arena_strndup(a, s, strlen(s));
}

char *
iotca_arena_printf(iotca_arena *a, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *s;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (s = iotca_arena_alloc(a, (size_t)n + 1)) == NULL)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

size_t
iotca_arena_used(const iotca_arena *a)
{
	return a->used;
}
