/*
 * tls.c - reading and checking the PEM files of gRPC TLS settings, so a
 * wrong path or a key that does not match its certificate is reported at
 * start with the file's name, not as a failed handshake later.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "buf/buf.h"
#include "rpc/rpc_int.h"

#define TLS_PEM_MAX (1u << 20)

iotca_err
rpc_tls_read_pem(const char *path, const char *what, char **out,
                 iotca_errbuf *eb)
{
	char chunk[8192];
	iotca_buf b;
	FILE *f;
	size_t n;
	iotca_err rc = IOTCA_OK;

	if ((f = fopen(path, "rb")) == NULL)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "cannot read TLS %s file %s: %s", what,
		                        path, strerror(errno));
	iotca_buf_init(&b, TLS_PEM_MAX);
	while (rc == IOTCA_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		rc = iotca_buf_append(&b, chunk, n);
	if (rc == IOTCA_OK && ferror(f))
		rc = IOTCA_EINVAL;
	fclose(f);
	if (rc == IOTCA_OK && b.len == 0)
		rc = IOTCA_EINVAL;
	if (rc != IOTCA_OK) {
		iotca_buf_free(&b);
		return iotca_errbuf_set(
		    eb, rc == IOTCA_ENOMEM ? rc : IOTCA_EINVAL,
		    "TLS %s file %s is empty, unreadable or "
		    "over %u bytes",
		    what, path, TLS_PEM_MAX);
	}
	*out = iotca_buf_take(&b, NULL);
	return IOTCA_OK;
}

iotca_err
rpc_tls_check_pair(const char *cert_pem, const char *key_pem,
                   const char *cert_path, iotca_errbuf *eb)
{
	BIO *cb = BIO_new_mem_buf(cert_pem, -1);
	BIO *kb = BIO_new_mem_buf(key_pem, -1);
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	iotca_err rc = IOTCA_EINVAL;

	if (cb == NULL || kb == NULL) {
		rc = iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
		goto out;
	}
	if ((x = PEM_read_bio_X509(cb, NULL, NULL, NULL)) == NULL) {
		iotca_errbuf_set(eb, rc, "%s holds no PEM certificate",
		                 cert_path);
		goto out;
	}
	if ((k = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL)) == NULL) {
		iotca_errbuf_set(eb, rc,
		                 "the TLS key file holds no unencrypted PEM "
		                 "private key");
		goto out;
	}
	if (X509_check_private_key(x, k) != 1) {
		iotca_errbuf_set(
		    eb, rc,
		    "the TLS key does not match the certificate in "
		    "%s",
		    cert_path);
		goto out;
	}
	rc = IOTCA_OK;
out:
	ERR_clear_error(); /* the queue never leaks past this module */
	X509_free(x);
	EVP_PKEY_free(k);
	BIO_free(cb);
	BIO_free(kb);
	return rc;
}
