/*
 * tls.c - the edge's OpenSSL server context.
 *
 * TLS 1.2 and 1.3 only, forward-secret AEAD suites only for 1.2, no
 * renegotiation, no compression. Resumption by tickets only: there is no
 * server-side session cache to grow, one ticket per TLS 1.3 handshake
 * (the default is two, and each costs an encryption and a record). Client
 * certificates are required, and their verification is ours entirely
 * (SSL_CTX_set_cert_verify_callback): OpenSSL never builds a chain from a
 * store, so nothing but a registered, active CA is ever trusted.
 */
#include <string.h>

#include <openssl/err.h>

#include "edge.h"

/* TLS 1.2 suites: ECDHE with AES-GCM or ChaCha20-Poly1305, for RSA and
 * ECDSA server keys. TLS 1.3 keeps OpenSSL's defaults (all AEAD). */
#define EDGE_TLS12_CIPHERS                                                     \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"           \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

static const unsigned char edge_sid_ctx[] = "iotca-edge";

/* The first OpenSSL error as text, and the queue cleared. */
static const char *
tls_err_text(char *out, size_t n)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(out, n, "no detail from OpenSSL");
	else
		ERR_error_string_n(e, out, n);
	ERR_clear_error();
	return out;
}

static iotca_err
tls_load_pair(SSL_CTX *ctx, const edge_opts *o, iotca_errbuf *eb)
{
	char why[256];

	if (SSL_CTX_use_certificate_chain_file(ctx, o->tls_cert) != 1)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "cannot use the server certificate "
		                        "'%s' (%s): check IOTCA_EDGE_TLS_CERT, "
		                        "a PEM certificate (chain)",
		                        o->tls_cert,
		                        tls_err_text(why, sizeof(why)));
	if (SSL_CTX_use_PrivateKey_file(ctx, o->tls_key, SSL_FILETYPE_PEM) != 1)
		return iotca_errbuf_set(
		    eb, IOTCA_EINVAL,
		    "cannot use the server key '%s' (%s): "
		    "check IOTCA_EDGE_TLS_KEY, an unencrypted "
		    "PEM private key",
		    o->tls_key, tls_err_text(why, sizeof(why)));
	if (SSL_CTX_check_private_key(ctx) != 1)
		return iotca_errbuf_set(
		    eb, IOTCA_EINVAL,
		    "the key '%s' does not belong to the "
		    "certificate '%s': check "
		    "IOTCA_EDGE_TLS_CERT and IOTCA_EDGE_TLS_KEY",
		    o->tls_key, o->tls_cert);
	return IOTCA_OK;
}

iotca_err
edge_tls_ctx_create(const edge_opts *o, int (*verify)(X509_STORE_CTX *, void *),
                    void *arg, SSL_CTX **out, iotca_errbuf *eb)
{
	SSL_CTX *ctx;
	iotca_err rc;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM,
		                        "cannot make a TLS context");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	                             SSL_OP_CIPHER_SERVER_PREFERENCE |
	                             SSL_OP_NO_COMPRESSION);
	if (SSL_CTX_set_cipher_list(ctx, EDGE_TLS12_CIPHERS) != 1) {
		rc =
		    iotca_errbuf_set(eb, IOTCA_EINTERNAL,
		                     "OpenSSL refused the TLS 1.2 cipher list");
		goto fail;
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
	                          SSL_MODE_ENABLE_PARTIAL_WRITE |
	                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 1);
	SSL_CTX_set_session_id_context(ctx, edge_sid_ctx,
	                               sizeof(edge_sid_ctx) - 1);
	SSL_CTX_set_verify(
	    ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, verify, arg);
	if ((rc = tls_load_pair(ctx, o, eb)) != IOTCA_OK)
		goto fail;
	*out = ctx;
	return IOTCA_OK;
fail:
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}
