/*
 * x509.h - the X.509 facts iotca needs, on OpenSSL 3.
 *
 * A certificate arrives from outside as PEM or DER bytes. iotca_x509_parse
 * accepts exactly one certificate, with a size cap and nothing after it
 * but white space, and explains what was wrong otherwise. The accessors
 * give what the registry stores and the edge compares: the subject and
 * issuer DN as DER bytes (compared byte for byte, never as text), the
 * RFC 2253 text for people, the serial number in iotca's normal form, the
 * SHA-256 fingerprint, validity and key type. OpenSSL's error queue never
 * leaks past this module.
 *
 * An iotca_x509 is immutable once parsed and may be shared between threads.
 */
#ifndef IOTCA_X509_H
#define IOTCA_X509_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "err/err.h"

#define IOTCA_X509_INPUT_MAX     (64u << 10) /* bytes of PEM or DER accepted */
#define IOTCA_X509_SN_MAX_OCTETS 20
#define IOTCA_X509_SN_HEX_MAX    (2 * IOTCA_X509_SN_MAX_OCTETS + 1)
#define IOTCA_X509_FP_HEX        65 /* 64 hex digits and a NUL */

typedef struct iotca_x509 iotca_x509;

/*
 * Parses one certificate from PEM ("-----BEGIN CERTIFICATE-----") or DER.
 * what names the input in messages ("CA certificate"). IOTCA_ETOOBIG over
 * IOTCA_X509_INPUT_MAX; IOTCA_EINVAL for anything that is not exactly one
 * well-formed certificate.
 */
iotca_err iotca_x509_parse(const void *data, size_t len, const char *what,
                           iotca_x509 **out, iotca_errbuf *eb);

/* Frees a certificate. NULL is allowed. */
void iotca_x509_free(iotca_x509 *x);

/* Takes another reference to x (freed by as many iotca_x509_free). */
iotca_x509 *iotca_x509_ref(iotca_x509 *x);

/* The subject and issuer Name as DER; valid while x lives. */
const uint8_t *iotca_x509_subject_der(const iotca_x509 *x, size_t *len);
const uint8_t *iotca_x509_issuer_der(const iotca_x509 *x, size_t *len);

/* The subject as RFC 2253 text ("CN=My CA,O=Example"). */
iotca_err iotca_x509_subject_text(const iotca_x509 *x, char *out, size_t n);

/* The subject's (last) commonName as UTF-8. IOTCA_ENOENT if none. */
iotca_err iotca_x509_subject_cn(const iotca_x509 *x, char *out, size_t n);

/* The serial number in normal form: uppercase hex, no leading zeros
 * ("-" first for a negative one, which RFC 5280 forbids). A serial over
 * IOTCA_X509_SN_MAX_OCTETS octets has no normal form: out is "". */
void iotca_x509_serial(const iotca_x509 *x, char out[IOTCA_X509_SN_HEX_MAX]);

/* The SHA-256 fingerprint of the DER, as 64 lowercase hex digits. */
void iotca_x509_fingerprint(const iotca_x509 *x, char out[IOTCA_X509_FP_HEX]);

/* Validity bounds as unix seconds. */
int64_t iotca_x509_not_before(const iotca_x509 *x);
int64_t iotca_x509_not_after(const iotca_x509 *x);

/* IOTCA_EPRECOND with a message when now is outside the validity. */
iotca_err iotca_x509_check_validity(const iotca_x509 *x, time_t now,
                                    const char *what, iotca_errbuf *eb);

/* IOTCA_EPRECOND unless basicConstraints says CA:TRUE and keyUsage, when
 * present, allows keyCertSign. */
iotca_err iotca_x509_check_ca(const iotca_x509 *x, const char *what,
                              iotca_errbuf *eb);

/* The public key's algorithm ("RSA", "EC", "ED25519", ...) and size. */
void iotca_x509_key_info(const iotca_x509 *x, char alg[16], int *bits);

/* Whether the public key is RSA. */
int iotca_x509_key_is_rsa(const iotca_x509 *x);

/* IOTCA_OK when x's signature verifies with issuer's public key, else
 * IOTCA_EPRECOND. */
iotca_err iotca_x509_check_signed_by(const iotca_x509 *x,
                                     const iotca_x509 *issuer, const char *what,
                                     iotca_errbuf *eb);

/* The certificate as PEM text (malloc'd, NUL-terminated) or NULL. */
char *iotca_x509_to_pem(const iotca_x509 *x);

/* The DER encoding; valid while x lives. */
const uint8_t *iotca_x509_der(const iotca_x509 *x, size_t *len);

/* The OpenSSL X509 inside (const; for the edge's TLS code). */
const void *iotca_x509_openssl(const iotca_x509 *x);

/*
 * Normalises a certificate serial number as users write it: hex digits,
 * optionally with ':' separators between octets and/or a 0x prefix, any
 * case.
 * The result is uppercase hex without leading zeros ("0" for zero), at
 * most IOTCA_X509_SN_MAX_OCTETS octets. IOTCA_EINVAL with a message that
 * says what is wrong.
 */
iotca_err iotca_x509_sn_normalize(const char *in, size_t len,
                                  char out[IOTCA_X509_SN_HEX_MAX],
                                  iotca_errbuf *eb);

#endif /* IOTCA_X509_H */
