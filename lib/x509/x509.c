/*
 * x509.c - certificate parsing and checks on OpenSSL 3.
 */
#include "x509/x509.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

struct iotca_x509 {
	X509 *x;
	atomic_int refs;
	uint8_t *der;
	size_t der_len;
	int64_t not_before, not_after;
};

#define PEM_BEGIN      "-----BEGIN "
#define PEM_BEGIN_CERT "-----BEGIN CERTIFICATE-----"

static int
x509_all_space(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isspace((unsigned char)p[i]))
			return 0;
	return 1;
}

/*
 * Refuses to decrypt: with no callback, OpenSSL would prompt for a pass
 * phrase on the controlling terminal when a block says "Proc-Type: 4,
 * ENCRYPTED", and a service started from a shell would block on it.
 */
static int
x509_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	return -1;
}

/* Reads the one PEM certificate in data, which starts after skip bytes of
 * white space; nothing else may come before or after it. */
static iotca_err
x509_parse_pem(const char *data, size_t len, size_t skip, const char *what,
               X509 **out, iotca_errbuf *eb)
{
	BIO *b;
	char *rest;
	long nrest;
	X509 *x;

	/* PEM_read_bio_X509 would skip a private key or CSR before it */
	if (len - skip < strlen(PEM_BEGIN_CERT) ||
	    memcmp(data + skip, PEM_BEGIN_CERT, strlen(PEM_BEGIN_CERT)) != 0)
		return iotca_errbuf_set(
		    eb, IOTCA_EINVAL,
		    "%s starts with a PEM block that is not a certificate (a "
		    "private key or a CSR?); upload exactly one \"-----BEGIN "
		    "CERTIFICATE-----\" block",
		    what);
	if ((b = BIO_new_mem_buf(data, (int)len)) == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	if ((x = PEM_read_bio_X509(b, NULL, x509_no_passphrase, NULL)) ==
	    NULL) {
		BIO_free(b);
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "%s is not a valid PEM certificate: "
		                        "expected one \"-----BEGIN "
		                        "CERTIFICATE-----\" block with a "
		                        "well-formed certificate inside",
		                        what);
	}
	nrest = BIO_get_mem_data(b, &rest);
	if (nrest > 0 && !x509_all_space(rest, (size_t)nrest)) {
		/* rest is not NUL-terminated */
		int another = memmem(rest, (size_t)nrest, PEM_BEGIN,
		                     strlen(PEM_BEGIN)) != NULL;
		X509_free(x);
		BIO_free(b);
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        another
		                            ? "%s holds more than one PEM "
		                              "block; upload exactly one "
		                              "certificate"
		                            : "%s has unexpected bytes after "
		                              "its PEM certificate; remove "
		                              "them",
		                        what);
	}
	BIO_free(b);
	*out = x;
	return IOTCA_OK;
}

static iotca_err
x509_parse_der(const uint8_t *data, size_t len, const char *what, X509 **out,
               iotca_errbuf *eb)
{
	const unsigned char *p = data;
	X509 *x = d2i_X509(NULL, &p, (long)len);

	if (x == NULL)
		return iotca_errbuf_set(
		    eb, IOTCA_EINVAL,
		    "%s is neither a PEM nor a DER "
		    "certificate; upload a .pem, .crt or "
		    ".cer file holding one X.509 certificate",
		    what);
	if ((size_t)(p - data) != len) {
		X509_free(x);
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "%s has %zu unexpected bytes after its "
		                        "DER certificate; remove them",
		                        what, len - (size_t)(p - data));
	}
	*out = x;
	return IOTCA_OK;
}

/* 0 when t is not a valid UTCTime or GeneralizedTime (d2i does not
 * check what is inside). */
static int
x509_time(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	*out = (int64_t)timegm(&tm);
	return 1;
}

/*
 * Whether nm is in DER. OpenSSL keeps a Name's bytes as they came (a
 * primitive SEQUENCE tag, long-form lengths, unsorted SETs), while iotca
 * compares subjects as DER bytes: such a name would slip past the subject
 * uniqueness rule while naming the same CA to OpenSSL. Rebuilt entry by
 * entry, a DER name encodes to the same bytes.
 */
static int
x509_name_is_der(const X509_NAME *nm)
{
	X509_NAME *copy = X509_NAME_new();
	const X509_NAME_ENTRY *e;
	const unsigned char *orig;
	unsigned char *enc = NULL;
	size_t olen;
	int i, set, len, ok = 0;

	if (copy == NULL ||
	    X509_NAME_get0_der((X509_NAME *)nm, &orig, &olen) != 1)
		goto out;
	for (i = 0; i < X509_NAME_entry_count(nm); i++) {
		e = X509_NAME_get_entry(nm, i);
		set = i > 0 && X509_NAME_ENTRY_set(e) ==
		                   X509_NAME_ENTRY_set(
		                       X509_NAME_get_entry(nm, i - 1))
		          ? -1 /* same RDN as the previous entry */
		          : 0;
		if (X509_NAME_add_entry(copy, e, -1, set) != 1)
			goto out;
	}
	len = i2d_X509_NAME(copy, &enc);
	ok = len > 0 && (size_t)len == olen && memcmp(enc, orig, olen) == 0;
out:
	OPENSSL_free(enc);
	X509_NAME_free(copy);
	return ok;
}

/* Caches what every accessor needs. */
static iotca_err
x509_wrap(X509 *x, const char *what, iotca_x509 **out, iotca_errbuf *eb)
{
	iotca_x509 *c;
	int64_t nb, na;
	unsigned char *p;
	int n;

	/* else a malformed notBefore would read as "valid since 1970" */
	if (!x509_time(X509_get0_notBefore(x), &nb) ||
	    !x509_time(X509_get0_notAfter(x), &na)) {
		X509_free(x);
		ERR_clear_error();
		return iotca_errbuf_set(
		    eb, IOTCA_EINVAL,
		    "%s has a malformed validity date (notBefore or notAfter)",
		    what);
	}
	if (!x509_name_is_der(X509_get_subject_name(x)) ||
	    !x509_name_is_der(X509_get_issuer_name(x))) {
		X509_free(x);
		ERR_clear_error();
		return iotca_errbuf_set(
		    eb, IOTCA_EINVAL,
		    "%s has a subject or issuer name that is not DER-encoded; "
		    "reissue it with a standard tool such as openssl",
		    what);
	}
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (n = i2d_X509(x, NULL)) <= 0 ||
	    (c->der = malloc((size_t)n)) == NULL) {
		free(c);
		X509_free(x);
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	}
	p = c->der;
	c->der_len = (size_t)i2d_X509(x, &p);
	c->x = x;
	atomic_init(&c->refs, 1);
	c->not_before = nb;
	c->not_after = na;
	*out = c;
	return IOTCA_OK;
}

iotca_err
iotca_x509_parse(const void *data, size_t len, const char *what,
                 iotca_x509 **out, iotca_errbuf *eb)
{
	const char *s = data;
	size_t skip = 0;
	X509 *x = NULL;
	iotca_err rc;

	if (len == 0)
		return iotca_errbuf_set(eb, IOTCA_EINVAL, "%s is empty", what);
	if (len > IOTCA_X509_INPUT_MAX)
		return iotca_errbuf_set(eb, IOTCA_ETOOBIG,
		                        "%s is %zu bytes; at most %u are "
		                        "accepted",
		                        what, len, IOTCA_X509_INPUT_MAX);
	while (skip < len && isspace((unsigned char)s[skip]))
		skip++;
	if (len - skip >= strlen(PEM_BEGIN) &&
	    memcmp(s + skip, PEM_BEGIN, strlen(PEM_BEGIN)) == 0)
		rc = x509_parse_pem(s, len, skip, what, &x, eb);
	else
		rc = x509_parse_der(data, len, what, &x, eb);
	ERR_clear_error();
	if (rc != IOTCA_OK)
		return rc;
	return x509_wrap(x, what, out, eb);
}

void
iotca_x509_free(iotca_x509 *x)
{
	if (x == NULL || atomic_fetch_sub(&x->refs, 1) != 1)
		return;
	X509_free(x->x);
	free(x->der);
	free(x);
}

iotca_x509 *
iotca_x509_ref(iotca_x509 *x)
{
	atomic_fetch_add(&x->refs, 1);
	return x;
}

static const uint8_t *
x509_name_der(const X509_NAME *name, size_t *len)
{
	const unsigned char *p = NULL;
	size_t n = 0;

	if (X509_NAME_get0_der((X509_NAME *)name, &p, &n) != 1) {
		*len = 0;
		return NULL;
	}
	*len = n;
	return p;
}

const uint8_t *
iotca_x509_subject_der(const iotca_x509 *x, size_t *len)
{
	return x509_name_der(X509_get_subject_name(x->x), len);
}

const uint8_t *
iotca_x509_issuer_der(const iotca_x509 *x, size_t *len)
{
	return x509_name_der(X509_get_issuer_name(x->x), len);
}

iotca_err
iotca_x509_subject_text(const iotca_x509 *x, char *out, size_t n)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long len;
	iotca_err rc = IOTCA_ENOMEM;

	if (b == NULL || n == 0)
		goto out;
	if (X509_NAME_print_ex(b, X509_get_subject_name(x->x), 0,
	                       XN_FLAG_RFC2253) < 0)
		goto out;
	len = BIO_get_mem_data(b, &p);
	if (len < 0 || (size_t)len >= n) {
		rc = IOTCA_ETOOBIG;
		goto out;
	}
	memcpy(out, p, (size_t)len);
	out[len] = '\0';
	rc = IOTCA_OK;
out:
	BIO_free(b);
	ERR_clear_error();
	return rc;
}

iotca_err
iotca_x509_subject_cn(const iotca_x509 *x, char *out, size_t n)
{
	const X509_NAME *name = X509_get_subject_name(x->x);
	X509_NAME_ENTRY *e;
	unsigned char *utf8 = NULL;
	int i = -1, last = -1, len;
	iotca_err rc = IOTCA_ENOENT;

	while ((i = X509_NAME_get_index_by_NID(name, NID_commonName, i)) >= 0)
		last = i;
	if (last < 0 || (e = X509_NAME_get_entry(name, last)) == NULL)
		return IOTCA_ENOENT;
	len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
	if (len < 0)
		rc = IOTCA_EINVAL;
	else if ((size_t)len >= n || memchr(utf8, '\0', (size_t)len) != NULL)
		rc = IOTCA_ETOOBIG;
	else {
		memcpy(out, utf8, (size_t)len);
		out[len] = '\0';
		rc = IOTCA_OK;
	}
	OPENSSL_free(utf8);
	ERR_clear_error();
	return rc;
}

void
iotca_x509_serial(const iotca_x509 *x, char out[IOTCA_X509_SN_HEX_MAX])
{
	const ASN1_INTEGER *sn = X509_get0_serialNumber(x->x);
	BIGNUM *bn = ASN1_INTEGER_to_BN(sn, NULL);
	char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
	const char *p = hex;
	size_t neg;

	out[0] = '\0';
	if (hex != NULL) {
		if (*p == '-') /* not allowed by RFC 5280; keep it visible */
			p++;
		while (p[0] == '0' && p[1] != '\0')
			p++;
		/* over 20 octets (RFC 5280 forbids it) has no normal form;
		 * a truncated one could name another certificate's SN */
		neg = hex[0] == '-';
		if (neg + strlen(p) < IOTCA_X509_SN_HEX_MAX) {
			out[0] = '-';
			memcpy(out + neg, p, strlen(p) + 1);
		}
	}
	OPENSSL_free(hex);
	BN_free(bn);
	ERR_clear_error();
}

void
iotca_x509_fingerprint(const iotca_x509 *x, char out[IOTCA_X509_FP_HEX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;

	out[0] = '\0';
	if (EVP_Digest(x->der, x->der_len, md, &n, EVP_sha256(), NULL) != 1 ||
	    n != 32)
		return;
	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int64_t
iotca_x509_not_before(const iotca_x509 *x)
{
	return x->not_before;
}

int64_t
iotca_x509_not_after(const iotca_x509 *x)
{
	return x->not_after;
}

static void
x509_fmt_time(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

iotca_err
iotca_x509_check_validity(const iotca_x509 *x, time_t now, const char *what,
                          iotca_errbuf *eb)
{
	char when[32];

	if ((int64_t)now < x->not_before) {
		x509_fmt_time(x->not_before, when);
		return iotca_errbuf_set(eb, IOTCA_EPRECOND,
		                        "%s is not valid until %s", what, when);
	}
	if ((int64_t)now > x->not_after) {
		x509_fmt_time(x->not_after, when);
		return iotca_errbuf_set(eb, IOTCA_EPRECOND, "%s expired on %s",
		                        what, when);
	}
	return IOTCA_OK;
}

iotca_err
iotca_x509_check_ca(const iotca_x509 *x, const char *what, iotca_errbuf *eb)
{
	uint32_t flags = X509_get_extension_flags(x->x);

	ERR_clear_error();
	if (flags & EXFLAG_INVALID)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "%s has malformed extensions", what);
	if (!(flags & EXFLAG_BCONS) || !(flags & EXFLAG_CA))
		return iotca_errbuf_set(eb, IOTCA_EPRECOND,
		                        "%s is not a CA certificate: it needs "
		                        "basicConstraints CA:TRUE",
		                        what);
	if ((flags & EXFLAG_KUSAGE) &&
	    !(X509_get_key_usage(x->x) & KU_KEY_CERT_SIGN))
		return iotca_errbuf_set(eb, IOTCA_EPRECOND,
		                        "%s may not sign certificates: its "
		                        "keyUsage lacks keyCertSign",
		                        what);
	return IOTCA_OK;
}

void
iotca_x509_key_info(const iotca_x509 *x, char alg[16], int *bits)
{
	EVP_PKEY *k = X509_get0_pubkey(x->x);
	const char *name = k != NULL ? EVP_PKEY_get0_type_name(k) : NULL;

	snprintf(alg, 16, "%s", name != NULL ? name : "unknown");
	*bits = k != NULL ? EVP_PKEY_get_bits(k) : 0;
	ERR_clear_error();
}

int
iotca_x509_key_is_rsa(const iotca_x509 *x)
{
	EVP_PKEY *k = X509_get0_pubkey(x->x);

	ERR_clear_error();
	return k != NULL && EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA;
}

iotca_err
iotca_x509_check_signed_by(const iotca_x509 *x, const iotca_x509 *issuer,
                           const char *what, iotca_errbuf *eb)
{
	EVP_PKEY *k = X509_get0_pubkey(issuer->x);
	int ok = k != NULL && X509_verify(x->x, k) == 1;

	ERR_clear_error();
	if (!ok)
		return iotca_errbuf_set(eb, IOTCA_EPRECOND,
		                        "%s is not signed by the CA "
		                        "certificate's private key",
		                        what);
	return IOTCA_OK;
}

char *
iotca_x509_to_pem(const iotca_x509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *s = NULL;
	long n;

	if (b != NULL && PEM_write_bio_X509(b, x->x) == 1 &&
	    (n = BIO_get_mem_data(b, &p)) > 0 &&
	    (s = malloc((size_t)n + 1)) != NULL) {
		memcpy(s, p, (size_t)n);
		s[n] = '\0';
	}
	BIO_free(b);
	ERR_clear_error();
	return s;
}

const uint8_t *
iotca_x509_der(const iotca_x509 *x, size_t *len)
{
	*len = x->der_len;
	return x->der;
}

const void *
iotca_x509_openssl(const iotca_x509 *x)
{
	return x->x;
}

/*
 * Collects the hex digits of "0A1B2C" or "0a:1b:2c" into out. With ':'
 * separators each group is one octet of 1 or 2 digits ("a" is "0A");
 * without them the digits are taken as they are.
 */
static iotca_err
x509_sn_groups(const char *p, size_t n, char *out, size_t *olen,
               iotca_errbuf *eb)
{
	int sep = memchr(p, ':', n) != NULL;
	size_t i, group = 0, need;

	for (i = 0; i < n; i++) {
		if (p[i] == ':') {
			if (group == 0 || i + 1 == n)
				return iotca_errbuf_set(
				    eb, IOTCA_EINVAL,
				    "serial number has an empty group between "
				    "':' separators");
			group = 0;
			continue;
		}
		if (!isxdigit((unsigned char)p[i]))
			return iotca_errbuf_set(
			    eb, IOTCA_EINVAL,
			    "serial number has '%c', which is "
			    "not a hex digit",
			    isprint((unsigned char)p[i]) ? p[i] : '?');
		if (sep && ++group > 2)
			return iotca_errbuf_set(
			    eb, IOTCA_EINVAL,
			    "serial number groups between ':' "
			    "must be 1 or 2 hex digits");
		/* a one-digit group gets its leading zero */
		need = sep && group == 1 && (i + 1 == n || p[i + 1] == ':') ? 2
		                                                            : 1;
		if (*olen + need > 2 * IOTCA_X509_SN_MAX_OCTETS + 2)
			return iotca_errbuf_set(
			    eb, IOTCA_EINVAL,
			    "serial number is longer than %d "
			    "octets",
			    IOTCA_X509_SN_MAX_OCTETS);
		if (need == 2)
			out[(*olen)++] = '0';
		out[(*olen)++] = (char)toupper((unsigned char)p[i]);
	}
	return IOTCA_OK;
}

iotca_err
iotca_x509_sn_normalize(const char *in, size_t len,
                        char out[IOTCA_X509_SN_HEX_MAX], iotca_errbuf *eb)
{
	char digits[2 * IOTCA_X509_SN_MAX_OCTETS + 3];
	size_t n = 0, start = 0;
	iotca_err rc;

	/* A 0x prefix and ':' separators may come together ("0x01:A3:ff"). */
	if (len >= 2 && in[0] == '0' && (in[1] == 'x' || in[1] == 'X')) {
		in += 2;
		len -= 2;
	}
	if (len == 0)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "serial number is empty; write it in "
		                        "hex, e.g. 0A1B2C or 0a:1b:2c");
	if ((rc = x509_sn_groups(in, len, digits, &n, eb)) != IOTCA_OK)
		return rc;
	while (start + 1 < n && digits[start] == '0')
		start++;
	if (n - start > 2 * IOTCA_X509_SN_MAX_OCTETS)
		return iotca_errbuf_set(
		    eb, IOTCA_EINVAL, "serial number is longer than %d octets",
		    IOTCA_X509_SN_MAX_OCTETS);
	memcpy(out, digits + start, n - start);
	out[n - start] = '\0';
	return IOTCA_OK;
}
