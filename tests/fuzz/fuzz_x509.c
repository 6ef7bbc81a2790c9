/*
 * fuzz_x509.c - certificate bytes from outside, through all of lib/x509.
 *
 * The input goes to iotca_x509_parse as an uploaded certificate would; a
 * certificate that parses is run through every accessor and check, and
 * its PEM must parse back to the same DER. The first 100 bytes also go to
 * iotca_x509_sn_normalize, whose output must be a normal form that
 * normalises to itself. Nothing may crash, leak or break those promises.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "x509/x509.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_SN_MAX 100

/* A normal-form SN: uppercase hex, no leading zero, at most 20 octets. */
static int
fuzz_sn_is_normal(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 2 * IOTCA_X509_SN_MAX_OCTETS ||
	    (n > 1 && s[0] == '0'))
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	return 1;
}

static void
fuzz_sn(const char *p, size_t n)
{
	char out[IOTCA_X509_SN_HEX_MAX], again[IOTCA_X509_SN_HEX_MAX];
	iotca_errbuf eb;

	if (iotca_x509_sn_normalize(p, n, out, &eb) != IOTCA_OK)
		return;
	if (!fuzz_sn_is_normal(out) ||
	    iotca_x509_sn_normalize(out, strlen(out), again, &eb) != IOTCA_OK ||
	    strcmp(out, again) != 0)
		abort();
}

/* to_pem gives a PEM that parses back to the same DER. */
static void
fuzz_pem_round_trip(const iotca_x509 *x)
{
	const uint8_t *a, *b;
	size_t an, bn;
	iotca_x509 *y = NULL;
	iotca_errbuf eb;
	char *pem = iotca_x509_to_pem(x);

	if (pem == NULL)
		return;
	if (iotca_x509_parse(pem, strlen(pem), "pem", &y, &eb) != IOTCA_OK)
		abort();
	a = iotca_x509_der(x, &an);
	b = iotca_x509_der(y, &bn);
	if (an != bn || memcmp(a, b, an) != 0)
		abort();
	iotca_x509_free(y);
	free(pem);
}

static void
fuzz_cert(iotca_x509 *x)
{
	char text[1024], cn[256], sn[IOTCA_X509_SN_HEX_MAX];
	char fp[IOTCA_X509_FP_HEX], alg[16];
	const uint8_t *p;
	size_t n;
	iotca_errbuf eb;
	iotca_x509 *r;
	int bits;

	p = iotca_x509_subject_der(x, &n);
	if (p != NULL && n > 0 && p[0] != 0x30)
		abort();
	iotca_x509_issuer_der(x, &n);
	iotca_x509_subject_text(x, text, sizeof(text));
	iotca_x509_subject_text(x, text, 8);
	iotca_x509_subject_cn(x, cn, sizeof(cn));
	iotca_x509_subject_cn(x, cn, 4);
	iotca_x509_serial(x, sn);
	if (sn[0] != '\0' && sn[0] != '-') /* a normal form, or nothing */
		fuzz_sn(sn, strlen(sn));
	iotca_x509_fingerprint(x, fp);
	if (strlen(fp) != 64)
		abort();
	iotca_x509_check_ca(x, "CA certificate", &eb);
	iotca_x509_check_validity(x, (time_t)1700000000, "certificate", &eb);
	iotca_x509_check_validity(x, (time_t)iotca_x509_not_before(x), "c",
	                          &eb);
	iotca_x509_check_validity(x, (time_t)iotca_x509_not_after(x) + 1, "c",
	                          &eb);
	iotca_x509_key_info(x, alg, &bits);
	iotca_x509_key_is_rsa(x);
	iotca_x509_check_signed_by(x, x, "certificate", &eb);
	iotca_x509_openssl(x);
	fuzz_pem_round_trip(x);
	r = iotca_x509_ref(x);
	iotca_x509_free(r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	iotca_x509 *x = NULL;
	iotca_errbuf eb;

	if (iotca_x509_parse(data, size, "certificate", &x, &eb) == IOTCA_OK) {
		fuzz_cert(x);
		iotca_x509_free(x);
	}
	fuzz_sn((const char *)data, size < FUZZ_SN_MAX ? size : FUZZ_SN_MAX);
	return 0;
}
