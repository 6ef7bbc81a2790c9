/*
 * tls.c - the edge's OpenSSL server context.
 *
 * TLS 1.2 and 1.3 only, forward-secret AEAD suites only for 1.2, no
 * renegotiation, no compression. Client certificates are required, and
 * their verification is ours entirely (SSL_CTX_set_cert_verify_callback):
 * OpenSSL never builds a chain from a store, so nothing but a registered,
 * active CA is ever trusted.
 *
 * Resumption uses the server-side session cache, bounded by
 * IOTCA_EDGE_TLS_SESSIONS, not stateless tickets (SSL_OP_NO_TICKET; TLS
 * 1.3 then sends one ticket that only names the cached session). A
 * stateless ticket holds the whole session, the device certificate
 * included, and OpenSSL 3.0 parses that certificate again each time: it
 * copies the session through d2i_SSL_SESSION when it makes a ticket and
 * when it opens one, and every certificate parse sets up an OSSL_DECODER
 * for the public key, which costs more than the RSA verifications of the
 * handshake. Kept in the cache, the session and its parsed certificate
 * are reused as they are; a live connection shares its session with the
 * cache, so only sessions of closed connections cost memory (about 6 KiB
 * each). Tickets were no more portable: their keys were random per
 * context, so they did not survive a restart or SIGHUP either.
 *
 * The context lives in a library context of its own (see below), in
 * which OpenSSL can read RSA and EC keys only.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_dispatch.h>
#include <openssl/err.h>
#include <openssl/provider.h>

#include "edge.h"

/* TLS 1.2 suites: ECDHE with AES-GCM or ChaCha20-Poly1305, for RSA and
 * ECDSA server keys. TLS 1.3 keeps OpenSSL's defaults (all AEAD). */
#define EDGE_TLS12_CIPHERS                                                     \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"           \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

static const unsigned char edge_sid_ctx[] = "iotca-edge";

/* ------------------------------------------------------ library context */

/*
 * The library context the server's TLS runs in: the default provider's
 * algorithms, offered by a thin provider ("iotca-tls") that passes every
 * operation through as it is except two, of which it keeps a subset:
 *   - key decoders: those for RSA and EC keys and the PEM/DER steps
 *     before them (10 of 40);
 *   - ciphers: the AEADs the TLS suites allowed here use, and AES-CTR for
 *     the random generator (6 of 124).
 *
 * Why: OpenSSL 3.0 reads the public key of every certificate it parses
 * with an OSSL_DECODER context built from scratch. Building one walks
 * every decoder of the library context many times over, and every
 * algorithm of the context's method store once (EVP_KEYMGMT_do_all_
 * provided), where libssl has put every cipher. For the device
 * certificate of each full handshake that cost as much as the RSA
 * verifications; in this context it costs a third. Nothing else changes:
 * key managers, signatures, digests, MACs, KDFs and the random generator
 * are the default provider's own (its provider context is handed on, as
 * OpenSSL's test/filterprov.c does), and the TLS suites that can be
 * negotiated are the same. Keys read in this context are device keys
 * (RSA, or refused as key_not_rsa when they cannot be read) and the
 * server's own key (RSA or ECDSA, unencrypted). CA certificates are read
 * in the default context (auth.c), so a CA key of any type still
 * verifies.
 *
 * Made once by the main thread (start-up, SIGHUP); freed after the last
 * SSL_CTX (edge_tls_libctx_free).
 */
static struct {
	OSSL_LIB_CTX *inner; /* holds the default provider */
	OSSL_PROVIDER *dflt;
	OSSL_LIB_CTX *outer; /* holds "iotca-tls": SSL_CTX_new_ex's */
	OSSL_PROVIDER *prov;
	OSSL_ALGORITHM *decoders, *ciphers; /* the kept subsets of dflt's */
} tl;

/* Whether the first of an algorithm's names ("RSA:rsaEncryption:1.2...")
 * is one of names[n]. */
static int
tl_named(const OSSL_ALGORITHM *a, const char *const *names, size_t n)
{
	size_t len = strcspn(a->algorithm_names, ":"), i;

	for (i = 0; i < n; i++)
		if (strlen(names[i]) == len &&
		    strncmp(a->algorithm_names, names[i], len) == 0)
			return 1;
	return 0;
}

/* Whether a decoder is kept: key type RSA or EC, or a step to DER; not a
 * Microsoft format, not an encrypted key. */
static int
tl_keep_decoder(const OSSL_ALGORITHM *a)
{
	static const char *const types[] = {"RSA", "EC", "DER"};
	const char *props =
	    a->property_definition != NULL ? a->property_definition : "";

	if (strstr(props, "input=msblob") != NULL ||
	    strstr(props, "input=pvk") != NULL ||
	    strstr(props, "EncryptedPrivateKeyInfo") != NULL)
		return 0;
	return tl_named(a, types, sizeof(types) / sizeof(types[0]));
}

/* Whether a cipher is kept: the AEADs of EDGE_TLS12_CIPHERS and of
 * OpenSSL's TLS 1.3 suites, and AES-CTR for the CTR-DRBG. */
static int
tl_keep_cipher(const OSSL_ALGORITHM *a)
{
	static const char *const names[] = {"AES-128-GCM",       "AES-256-GCM",
	                                    "ChaCha20-Poly1305", "AES-128-CTR",
	                                    "AES-192-CTR",       "AES-256-CTR"};

	return tl_named(a, names, sizeof(names) / sizeof(names[0]));
}

static const OSSL_ALGORITHM *
tl_query(void *provctx, int op, int *no_cache)
{
	(void)provctx;
	if (op == OSSL_OP_DECODER || op == OSSL_OP_CIPHER) {
		*no_cache = 0;
		return op == OSSL_OP_DECODER ? tl.decoders : tl.ciphers;
	}
	return OSSL_PROVIDER_query_operation(tl.dflt, op, no_cache);
}

/* TLS-GROUP: the key exchange groups libssl offers. */
static int
tl_capabilities(void *provctx, const char *capability, OSSL_CALLBACK *cb,
                void *arg)
{
	(void)provctx;
	return OSSL_PROVIDER_get_capabilities(tl.dflt, capability, cb, arg);
}

static const OSSL_DISPATCH tl_dispatch[] = {
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))tl_query},
    {OSSL_FUNC_PROVIDER_GET_CAPABILITIES, (void (*)(void))tl_capabilities},
    {0, NULL}};

static int
tl_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
        const OSSL_DISPATCH **out, void **provctx)
{
	(void)handle;
	(void)in;
	*provctx = OSSL_PROVIDER_get0_provider_ctx(tl.dflt);
	*out = tl_dispatch;
	return 1;
}

/* The default provider's algorithms of op that keep() keeps, as a table
 * ending with a zeroed entry (NULL on no memory). */
static OSSL_ALGORITHM *
tl_subset(int op, int (*keep)(const OSSL_ALGORITHM *))
{
	const OSSL_ALGORITHM *all;
	OSSL_ALGORITHM *kept;
	size_t n = 0, k = 0, i;
	int no_cache;

	if ((all = OSSL_PROVIDER_query_operation(tl.dflt, op, &no_cache)) ==
	    NULL)
		return NULL;
	while (all[n].algorithm_names != NULL)
		n++;
	if ((kept = calloc(n + 1, sizeof(*kept))) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (keep(&all[i]))
			kept[k++] = all[i];
	return kept;
}

void
edge_tls_libctx_free(void)
{
	OSSL_PROVIDER_unload(tl.prov);
	OSSL_LIB_CTX_free(tl.outer);
	OSSL_PROVIDER_unload(tl.dflt);
	OSSL_LIB_CTX_free(tl.inner);
	free(tl.decoders);
	free(tl.ciphers);
	memset(&tl, 0, sizeof(tl));
}

/* The library context for SSL_CTX_new_ex; made on first use. */
static OSSL_LIB_CTX *
tl_get(iotca_errbuf *eb)
{
	if (tl.outer != NULL)
		return tl.outer;
	if ((tl.inner = OSSL_LIB_CTX_new()) == NULL ||
	    (tl.dflt = OSSL_PROVIDER_load(tl.inner, "default")) == NULL ||
	    (tl.decoders = tl_subset(OSSL_OP_DECODER, tl_keep_decoder)) ==
	        NULL ||
	    (tl.ciphers = tl_subset(OSSL_OP_CIPHER, tl_keep_cipher)) == NULL ||
	    (tl.outer = OSSL_LIB_CTX_new()) == NULL ||
	    OSSL_PROVIDER_add_builtin(tl.outer, "iotca-tls", tl_init) != 1 ||
	    (tl.prov = OSSL_PROVIDER_load(tl.outer, "iotca-tls")) == NULL) {
		edge_tls_libctx_free();
		ERR_clear_error();
		iotca_errbuf_set(eb, IOTCA_EINTERNAL,
		                 "cannot set up OpenSSL's default provider "
		                 "for TLS");
		return NULL;
	}
	return tl.outer;
}

/* ------------------------------------------------------ session marks */

static int tl_fp_index = -1;

static int
tl_fp_dup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d,
          int idx, long argl, void *argp)
{
	uint8_t *copy = NULL;

	(void)to;
	(void)from;
	(void)idx;
	(void)argl;
	(void)argp;
	if (*from_d != NULL && (copy = malloc(EDGE_FP_LEN)) != NULL)
		memcpy(copy, *from_d, EDGE_FP_LEN);
	*from_d = copy; /* none: the copy's resumption verifies again */
	return 1;
}

static void
tl_fp_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
           void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	free(ptr);
}

int
edge_tls_fp_index(void)
{
	return tl_fp_index;
}

/* ------------------------------------------------------ server context */

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
	OSSL_LIB_CTX *lctx = tl_get(eb);
	SSL_CTX *ctx;
	iotca_err rc;

	if (lctx == NULL)
		return IOTCA_EINTERNAL;
	if (tl_fp_index < 0 && (tl_fp_index = SSL_SESSION_get_ex_new_index(
	                            0, NULL, NULL, tl_fp_dup, tl_fp_free)) < 0)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM,
		                        "cannot make a TLS context");
	if ((ctx = SSL_CTX_new_ex(lctx, NULL, TLS_server_method())) == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM,
		                        "cannot make a TLS context");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	                             SSL_OP_CIPHER_SERVER_PREFERENCE |
	                             SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET);
	if (SSL_CTX_set_cipher_list(ctx, EDGE_TLS12_CIPHERS) != 1) {
		rc =
		    iotca_errbuf_set(eb, IOTCA_EINTERNAL,
		                     "OpenSSL refused the TLS 1.2 cipher list");
		goto fail;
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
	                          SSL_MODE_ENABLE_PARTIAL_WRITE |
	                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* one read() takes what the peer sent, not 5 bytes and then the
	 * rest of each record: loop.c reads what this leaves buffered */
	SSL_CTX_set_read_ahead(ctx, 1);
	if (o->tls_sessions > 0) {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
		SSL_CTX_sess_set_cache_size(ctx, o->tls_sessions);
		SSL_CTX_set_num_tickets(ctx, 1);
	} else {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_num_tickets(ctx, 0);
	}
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
