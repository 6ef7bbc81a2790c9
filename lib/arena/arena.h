/*
 * arena.h - a region allocator for memory that lives as long as one task.
 *
 * A gRPC call's response fields, a parsed etcd reply's strings: allocate
 * them from an arena and free everything at once with iotca_arena_destroy.
 * Allocations are 16-byte aligned. Not thread-safe: one owner at a time.
 * The arena has a cap on its total size so a hostile input cannot make a
 * single task allocate without bound.
 */
#ifndef IOTCA_ARENA_H
#define IOTCA_ARENA_H

#include <stddef.h>

typedef struct iotca_arena iotca_arena;

/* Creates an arena that will refuse to hand out more than cap bytes. */
iotca_arena *iotca_arena_create(size_t cap);

/* Frees every allocation and the arena. NULL is allowed. */
void iotca_arena_destroy(iotca_arena *a);

/* n bytes of uninitialised memory, or NULL (out of memory or over cap). */
void *iotca_arena_alloc(iotca_arena *a, size_t n);

/* n zeroed bytes, or NULL. */
void *iotca_arena_zalloc(iotca_arena *a, size_t n);

/* A NUL-terminated copy of n bytes of p, or NULL. */
char *iotca_arena_strndup(iotca_arena *a, const char *p, size_t n);

/* A copy of a NUL-terminated string, or NULL. */
char *iotca_arena_strdup(iotca_arena *a, const char *s);

/* printf into arena memory, or NULL. */
char *iotca_arena_printf(iotca_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Bytes handed out so far. */
size_t iotca_arena_used(const iotca_arena *a);

#endif /* IOTCA_ARENA_H */
