/*
 * rand.c - CSPRNG helpers.
 */
#include "rand/rand.h"

#include <stdint.h>
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/rand.h>

iotca_err
iotca_rand_hex(char *out, size_t nbytes)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[64];
	size_t i;

	if (nbytes > sizeof(b))
		return IOTCA_EINVAL;
	if (RAND_bytes(b, (int)nbytes) != 1) {
		ERR_clear_error();
		return IOTCA_EINTERNAL;
	}
	for (i = 0; i < nbytes; i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[2 * nbytes] = '\0';
	return IOTCA_OK;
}

iotca_err
iotca_rand_alnum(char *out, size_t n)
{
	static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                          "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char b;
	size_t i = 0;

	while (i < n) {
		if (RAND_bytes(&b, 1) != 1) {
			ERR_clear_error();
			return IOTCA_EINTERNAL;
		}
		if (b >= 248) /* 248 = 4 * 62: reject to stay uniform */
			continue;
		out[i++] = set[b % 62];
	}
	out[n] = '\0';
	return IOTCA_OK;
}
