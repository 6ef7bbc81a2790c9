/*
 * test_x509.c - lib/x509 against certificates made by the openssl command.
 *
 * Every certificate is made at test time in a mkdtemp directory (removed at
 * the end) with the commands users run (see the reference page on managing
 * CA certificates): openssl genrsa, req and x509 -req. Inputs are handed to
 * the parser in malloc'd buffers of their exact size, so under ASan any read
 * past the end of the input is caught.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "test.h"
#include "x509/x509.h"

/* 64 lowercase hex digits, as a registration code is. */
#define REGCODE                                                                \
	"c7cdfde6775c4b408b69d7e3c865f21bafe67937dc9a483ebbf7e6997b7b0a1f"

static char tmpdir[64];

/* Runs a shell command in tmpdir; its output goes to tmpdir/log. */
__attribute__((format(printf, 1, 2))) static int
sh(const char *fmt, ...)
{
	char cmd[4096], full[4200];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "cd '%s' && (%s) >>log 2>&1", tmpdir, cmd);
	st = system(full);
	if (st != 0) {
		fprintf(stderr, "command failed (%d): %s\n", st, cmd);
		return -1;
	}
	return 0;
}

/* The first line a shell command prints in tmpdir, without its newline. */
__attribute__((format(printf, 2, 3))) static int
sh_line(char out[512], const char *fmt, ...)
{
	char cmd[4096], full[4200];
	va_list ap;
	FILE *p;
	int ok;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "cd '%s' && %s 2>>log", tmpdir, cmd);
	if ((p = popen(full, "r")) == NULL)
		return -1;
	ok = fgets(out, 512, p) != NULL;
	if (pclose(p) != 0 || !ok)
		return -1;
	out[strcspn(out, "\r\n")] = '\0';
	return 0;
}

/* The file tmpdir/name in a malloc'd buffer of exactly its size (or of
 * extra more bytes, left uninitialised for the caller). */
static uint8_t *
slurp_extra(const char *name, size_t *len, size_t extra)
{
	char path[256];
	uint8_t *p = NULL;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	if ((f = fopen(path, "rb")) == NULL) {
		perror(path);
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 &&
	    fseek(f, 0, SEEK_SET) == 0 &&
	    (p = malloc((size_t)n + extra)) != NULL &&
	    fread(p, 1, (size_t)n, f) == (size_t)n) {
		*len = (size_t)n;
	} else {
		free(p);
		p = NULL;
	}
	fclose(f);
	return p;
}

static uint8_t *
slurp(const char *name, size_t *len)
{
	return slurp_extra(name, len, 0);
}

/* Copies s (without its NUL) into an exact-size malloc'd buffer. */
static uint8_t *
dup_exact(const void *s, size_t n)
{
	uint8_t *p = malloc(n > 0 ? n : 1);

	if (p != NULL && n > 0)
		memcpy(p, s, n);
	return p;
}

/* Parses the file tmpdir/name; NULL (with the reason printed) on failure. */
static iotca_x509 *
load(const char *name)
{
	iotca_x509 *x = NULL;
	iotca_errbuf eb;
	uint8_t *p;
	size_t n;

	if ((p = slurp(name, &n)) == NULL)
		return NULL;
	if (iotca_x509_parse(p, n, name, &x, &eb) != IOTCA_OK) {
		fprintf(stderr, "parse %s: %s\n", name, iotca_errbuf_msg(&eb));
		x = NULL;
	}
	free(p);
	return x;
}

/* Parses n bytes at p (copied to an exact-size buffer); returns the code
 * and leaves the message in eb. A certificate parsed is freed. */
static iotca_err
parse_bytes(const void *p, size_t n, iotca_errbuf *eb)
{
	uint8_t *copy = dup_exact(p, n);
	iotca_x509 *x = NULL;
	iotca_err rc;

	iotca_errbuf_clear(eb);
	rc = iotca_x509_parse(copy, n, "CA certificate", &x, eb);
	CHECK(ERR_peek_error() == 0); /* the queue never leaks */
	iotca_x509_free(x);
	free(copy);
	return rc;
}

/* A self-signed certificate: key file, subject, extra openssl req args. */
__attribute__((format(printf, 4, 5))) static int
make_selfsigned(const char *out, const char *key, const char *subj,
                const char *fmt, ...)
{
	char extra[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(extra, sizeof(extra), fmt, ap);
	va_end(ap);
	return sh("openssl req -new -x509 -config min.cnf -key %s -subj '%s' "
	          "-days 30 -out %s %s",
	          key, subj, out, extra);
}

static int
bytes_eq(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	return a != NULL && b != NULL && an == bn && an > 0 &&
	       memcmp(a, b, an) == 0;
}

/* ---- parse ---------------------------------------------------------- */

static void
test_parse_pem_and_der_agree(void)
{
	iotca_x509 *pem, *der;
	const uint8_t *a, *b, *file;
	size_t an, bn, fn;
	char fa[IOTCA_X509_FP_HEX], fb[IOTCA_X509_FP_HEX];

	REQUIRE(make_selfsigned("pd.pem", "ec.key", "/O=Acme/CN=PEM DER",
	                        "-addext basicConstraints=critical,CA:TRUE") ==
	        0);
	REQUIRE(sh("openssl x509 -in pd.pem -outform DER -out pd.der") == 0);
	pem = load("pd.pem");
	der = load("pd.der");
	REQUIRE(pem != NULL && der != NULL);

	a = iotca_x509_der(pem, &an);
	b = iotca_x509_der(der, &bn);
	CHECK(bytes_eq(a, an, b, bn));
	file = slurp("pd.der", &fn);
	CHECK(bytes_eq(a, an, file, fn)); /* DER is the file's bytes */
	free((void *)file);

	iotca_x509_fingerprint(pem, fa);
	iotca_x509_fingerprint(der, fb);
	CHECK_EQ_INT(strlen(fa), 64);
	CHECK_EQ_STR(fa, fb);

	a = iotca_x509_subject_der(pem, &an);
	b = iotca_x509_subject_der(der, &bn);
	CHECK(bytes_eq(a, an, b, bn));
	CHECK(iotca_x509_openssl(pem) != NULL);
	iotca_x509_free(pem);
	iotca_x509_free(der);
}

static void
test_parse_pem_whitespace_and_crlf(void)
{
	uint8_t *pem, *buf;
	size_t n, i, o = 0;
	iotca_errbuf eb;
	const char lead[] = " \t\r\n\r\n";
	const char tail[] = "\r\n\n \t\r\n";

	REQUIRE(make_selfsigned("ws.pem", "ec.key", "/CN=ws", "%s", "") == 0);
	REQUIRE((pem = slurp("ws.pem", &n)) != NULL);
	REQUIRE((buf = malloc(2 * n + sizeof(lead) + sizeof(tail))) != NULL);
	memcpy(buf, lead, sizeof(lead) - 1);
	o = sizeof(lead) - 1;
	for (i = 0; i < n; i++) { /* LF -> CRLF */
		if (pem[i] == '\n')
			buf[o++] = '\r';
		buf[o++] = pem[i];
	}
	CHECK_EQ_INT(parse_bytes(buf, o, &eb), IOTCA_OK);
	memcpy(buf + o, tail, sizeof(tail) - 1);
	CHECK_EQ_INT(parse_bytes(buf, o + sizeof(tail) - 1, &eb), IOTCA_OK);
	/* without the final newline */
	CHECK_EQ_INT(parse_bytes(pem, n - 1, &eb), IOTCA_OK);
	free(buf);
	free(pem);
}

static void
test_parse_pem_trailing_junk(void)
{
	uint8_t *pem;
	size_t n;
	iotca_errbuf eb;

	REQUIRE(make_selfsigned("tj.pem", "ec.key", "/CN=tj", "%s", "") == 0);
	/* junk after the certificate; the buffer is not NUL-terminated */
	REQUIRE((pem = slurp_extra("tj.pem", &n, 16)) != NULL);
	memcpy(pem + n, "\nhello", 6);
	CHECK_EQ_INT(parse_bytes(pem, n + 6, &eb), IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "unexpected bytes");
	CHECK_CONTAINS(eb.msg, "CA certificate");
	/* one byte only, no newline before it */
	pem[n] = 'x';
	CHECK_EQ_INT(parse_bytes(pem, n + 1, &eb), IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "unexpected bytes");
	/* a half "-----BEGIN " is junk, not a second block */
	memcpy(pem + n, "-----BEG", 8);
	CHECK_EQ_INT(parse_bytes(pem, n + 8, &eb), IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "unexpected bytes");
	free(pem);
}

static void
test_parse_two_certs(void)
{
	uint8_t *two;
	size_t n;
	iotca_errbuf eb;

	REQUIRE(make_selfsigned("c1.pem", "ec.key", "/CN=one", "%s", "") == 0);
	REQUIRE(make_selfsigned("c2.pem", "ec.key", "/CN=two", "%s", "") == 0);
	REQUIRE(sh("cat c1.pem c2.pem > two.pem") == 0);
	REQUIRE((two = slurp("two.pem", &n)) != NULL);
	CHECK_EQ_INT(parse_bytes(two, n, &eb), IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "more than one");
	free(two);

	/* a certificate followed by its private key */
	REQUIRE(sh("cat c1.pem ec.key > certkey.pem") == 0);
	REQUIRE((two = slurp("certkey.pem", &n)) != NULL);
	CHECK_EQ_INT(parse_bytes(two, n, &eb), IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "more than one");
	free(two);
}

static void
test_parse_key_or_csr_is_not_a_cert(void)
{
	const char *names[] = {"ver.key", "ec.key", "pk.csr", "keycert.pem"};
	uint8_t *p;
	size_t i, n;
	iotca_errbuf eb;

	REQUIRE(sh("openssl req -new -config min.cnf -key ec.key -subj /CN=csr "
	           "-out pk.csr") == 0);
	REQUIRE(make_selfsigned("kc.pem", "ec.key", "/CN=kc", "%s", "") == 0);
	/* a private key pasted before the certificate must not slip by */
	REQUIRE(sh("cat ec.key kc.pem > keycert.pem") == 0);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		REQUIRE((p = slurp(names[i], &n)) != NULL);
		CHECK_EQ_INT(parse_bytes(p, n, &eb), IOTCA_EINVAL);
		CHECK_CONTAINS(eb.msg, "CA certificate");
		CHECK_CONTAINS(eb.msg, "CERTIFICATE");
		free(p);
	}
	/* the CSR in DER */
	REQUIRE(sh("openssl req -in pk.csr -outform DER -out pk.csr.der") == 0);
	REQUIRE((p = slurp("pk.csr.der", &n)) != NULL);
	CHECK_EQ_INT(parse_bytes(p, n, &eb), IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "neither a PEM nor a DER");
	free(p);
}

static void
test_parse_der_trailing_bytes(void)
{
	uint8_t *der;
	size_t n;
	iotca_errbuf eb;

	REQUIRE(make_selfsigned("dt.pem", "ec.key", "/CN=dt", "%s", "") == 0);
	REQUIRE(sh("openssl x509 -in dt.pem -outform DER -out dt.der") == 0);
	REQUIRE((der = slurp_extra("dt.der", &n, 3)) != NULL);
	memcpy(der + n, "\0\0\n", 3);
	CHECK_EQ_INT(parse_bytes(der, n + 3, &eb), IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "3 unexpected bytes");
	/* DER followed by white space is still trailing bytes */
	der[n] = '\n';
	CHECK_EQ_INT(parse_bytes(der, n + 1, &eb), IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "1 unexpected bytes");
	CHECK_EQ_INT(parse_bytes(der, n, &eb), IOTCA_OK);
	free(der);
}

static void
test_parse_garbage_empty_and_size_cap(void)
{
	static const char garbage[] = "this is not a certificate\n";
	static const char begin_only[] = "-----BEGIN CERTIFICATE-----\n";
	static const char bad_b64[] = "-----BEGIN CERTIFICATE-----\n"
	                              "AAAA****\n-----END CERTIFICATE-----\n";
	iotca_x509 *x = (iotca_x509 *)&x; /* must stay untouched */
	iotca_errbuf eb;
	uint8_t *big, *pem;
	size_t n;

	CHECK_EQ_INT(parse_bytes(garbage, sizeof(garbage) - 1, &eb),
	             IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "neither a PEM nor a DER");
	CHECK_EQ_INT(parse_bytes(begin_only, sizeof(begin_only) - 1, &eb),
	             IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "not a valid PEM certificate");
	CHECK_EQ_INT(parse_bytes(bad_b64, sizeof(bad_b64) - 1, &eb),
	             IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "not a valid PEM certificate");
	CHECK_EQ_INT(parse_bytes("\x30\x00", 2, &eb), IOTCA_EINVAL);
	CHECK_EQ_INT(parse_bytes("   \n", 4, &eb), IOTCA_EINVAL);

	CHECK_EQ_INT(iotca_x509_parse("", 0, "CA certificate", &x, &eb),
	             IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "CA certificate is empty");
	CHECK(x == (iotca_x509 *)&x);

	/* a valid certificate padded past the cap is refused before parsing */
	REQUIRE(make_selfsigned("big.pem", "ec.key", "/CN=big", "%s", "") == 0);
	REQUIRE((pem = slurp("big.pem", &n)) != NULL);
	REQUIRE((big = malloc(1u << 20)) != NULL);
	memset(big, '\n', 1u << 20);
	memcpy(big, pem, n);
	CHECK_EQ_INT(iotca_x509_parse(big, 1u << 20, "CA certificate", &x, &eb),
	             IOTCA_ETOOBIG);
	CHECK_CONTAINS(eb.msg, "1048576 bytes");
	CHECK(x == (iotca_x509 *)&x);
	CHECK_EQ_INT(parse_bytes(big, IOTCA_X509_INPUT_MAX + 1, &eb),
	             IOTCA_ETOOBIG);
	CHECK_CONTAINS(eb.msg, "65537 bytes");
	CHECK_CONTAINS(eb.msg, "at most 65536");
	/* exactly the cap is fine */
	CHECK_EQ_INT(parse_bytes(big, IOTCA_X509_INPUT_MAX, &eb), IOTCA_OK);
	free(big);
	free(pem);
}

static void
test_parse_truncated(void)
{
	uint8_t *der, *pem;
	size_t n, pn, i;
	iotca_errbuf eb;
	int bad = 0;

	REQUIRE(make_selfsigned("tr.pem", "ec.key", "/CN=truncated", "%s",
	                        "") == 0);
	REQUIRE(sh("openssl x509 -in tr.pem -outform DER -out tr.der") == 0);
	REQUIRE((der = slurp("tr.der", &n)) != NULL);
	for (i = 1; i < n; i++)
		if (parse_bytes(der, i, &eb) != IOTCA_EINVAL)
			bad++;
	CHECK_EQ_INT(bad, 0);
	REQUIRE((pem = slurp("tr.pem", &pn)) != NULL);
	/* cut before the END line, and in the middle */
	CHECK_EQ_INT(parse_bytes(pem, pn - 27, &eb), IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "not a valid PEM certificate");
	CHECK_EQ_INT(parse_bytes(pem, pn / 2, &eb), IOTCA_EINVAL);
	/* a damaged signature still parses; it just does not verify */
	REQUIRE(n > 10);
	der[n - 5] ^= 0x5a;
	{
		iotca_x509 *x = NULL;
		CHECK_EQ_INT(iotca_x509_parse(der, n, "cert", &x, &eb),
		             IOTCA_OK);
		if (x != NULL) {
			CHECK_EQ_INT(
			    iotca_x509_check_signed_by(x, x, "cert", &eb),
			    IOTCA_EPRECOND);
			iotca_x509_free(x);
		}
	}
	free(der);
	free(pem);
}

/* d2i_X509 does not look inside UTCTime; a date that is not one must not
 * read as 1970 (which would make any notBefore "valid now"). */
static void
test_parse_malformed_dates(void)
{
	uint8_t *der, *t;
	size_t n;
	iotca_errbuf eb;

	REQUIRE(make_selfsigned("md.pem", "ec.key", "/CN=md", "%s", "") == 0);
	REQUIRE(sh("openssl x509 -in md.pem -outform DER -out md.der") == 0);
	REQUIRE((der = slurp("md.der", &n)) != NULL);
	CHECK_EQ_INT(parse_bytes(der, n, &eb), IOTCA_OK);
	/* the first UTCTime of 13 characters is notBefore */
	t = memmem(der, n, "\x17\x0d", 2);
	REQUIRE(t != NULL && t + 15 <= der + n);
	t[2] = 'x';
	CHECK_EQ_INT(parse_bytes(der, n, &eb), IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "CA certificate has a malformed validity date");
	t[2] = '2';
	t[14] = '+'; /* no Z */
	CHECK_EQ_INT(parse_bytes(der, n, &eb), IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "malformed validity date");
	t[14] = 'Z';
	/* notAfter */
	t = memmem(t + 15, n - (size_t)(t + 15 - der), "\x17\x0d", 2);
	REQUIRE(t != NULL && t + 15 <= der + n);
	t[8] = '9'; /* hour 9x */
	CHECK_EQ_INT(parse_bytes(der, n, &eb), IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "malformed validity date");
	free(der);
}

/*
 * OpenSSL keeps a Name's bytes as they came; iotca compares subjects as
 * DER bytes, so a BER-encoded twin of another account's CA subject must
 * not get in. The certificate's outer lengths are 0x82 long form here.
 */
static void
test_parse_non_der_names(void)
{
	uint8_t *der, *big, *subj;
	const uint8_t *sd;
	size_t n, sn, off;
	iotca_x509 *x;
	iotca_errbuf eb;

	REQUIRE(make_selfsigned("nd.pem", "ca.key", "/O=Acme/CN=Non DER", "%s",
	                        "") == 0);
	REQUIRE(sh("openssl x509 -in nd.pem -outform DER -out nd.der") == 0);
	REQUIRE((x = load("nd.der")) != NULL);
	sd = iotca_x509_subject_der(x, &sn);
	REQUIRE((der = slurp("nd.der", &n)) != NULL);
	REQUIRE(n > 300 && der[1] == 0x82 && der[5] == 0x82);
	/* issuer first, then the subject: the second occurrence */
	subj = memmem(der, n, sd, sn);
	REQUIRE(subj != NULL);
	subj = memmem(subj + 1, n - (size_t)(subj + 1 - der), sd, sn);
	REQUIRE(subj != NULL && subj[0] == 0x30 && subj[1] < 0x80);
	off = (size_t)(subj - der);
	iotca_x509_free(x);

	/* SEQUENCE tag in primitive form */
	subj[0] = 0x10;
	CHECK_EQ_INT(parse_bytes(der, n, &eb), IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "not DER-encoded");
	subj[0] = 0x30;
	CHECK_EQ_INT(parse_bytes(der, n, &eb), IOTCA_OK);

	/* a long-form length where the short form fits: 30 81 LL */
	REQUIRE((big = malloc(n + 1)) != NULL);
	memcpy(big, der, off + 1);
	big[off + 1] = 0x81;
	memcpy(big + off + 2, der + off + 1, n - off - 1);
	big[3] = (uint8_t)(big[3] + 1); /* Certificate and TBS lengths */
	big[7] = (uint8_t)(big[7] + 1);
	REQUIRE(big[3] != 0 && big[7] != 0);
	CHECK_EQ_INT(parse_bytes(big, n + 1, &eb), IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "not DER-encoded");
	free(big);
	free(der);

	/* multi-valued RDNs and UTF-8 are DER when openssl makes them */
	REQUIRE(make_selfsigned("mv.pem", "ec.key",
	                        "/O=Acme/CN=M\xc3\xbcller+OU=Ops+DC=x",
	                        "-utf8") == 0);
	REQUIRE((x = load("mv.pem")) != NULL);
	iotca_x509_free(x);
}

/*
 * A PEM certificate with "Proc-Type: 4,ENCRYPTED" headers must be refused,
 * not answered with a pass phrase prompt on the controlling terminal (a
 * service started from a shell would block on it). Run in a child whose
 * controlling terminal is a fresh pty, and watch the pty.
 */
static void
test_parse_encrypted_pem_never_prompts(void)
{
	static const char hdr[] = "Proc-Type: 4,ENCRYPTED\n"
	                          "DEK-Info: AES-128-CBC,"
	                          "00112233445566778899AABBCCDDEEFF\n\n";
	uint8_t *pem, *enc;
	char seen[1024];
	size_t n, first, o, got = 0;
	int master, st = -1;
	pid_t pid;
	time_t deadline;

	REQUIRE(make_selfsigned("enc.pem", "ec.key", "/CN=enc", "%s", "") == 0);
	REQUIRE((pem = slurp("enc.pem", &n)) != NULL);
	first = (size_t)((uint8_t *)memchr(pem, '\n', n) - pem) + 1;
	REQUIRE((enc = malloc(n + sizeof(hdr))) != NULL);
	memcpy(enc, pem, first);
	memcpy(enc + first, hdr, sizeof(hdr) - 1);
	o = first + sizeof(hdr) - 1;
	memcpy(enc + o, pem + first, n - first);
	o += n - first;

	fflush(NULL);
	pid = forkpty(&master, NULL, NULL, NULL);
	if (pid < 0) { /* a container without /dev/pts */
		fprintf(stderr, "%s: skipped: forkpty: %s\n", test_current,
		        strerror(errno));
		free(enc);
		free(pem);
		return;
	}
	if (pid == 0) {
		iotca_x509 *x = NULL;
		iotca_errbuf eb;
		iotca_err rc = iotca_x509_parse(enc, o, "cert", &x, &eb);
		_exit(rc == IOTCA_EINVAL ? 0 : 1);
	}
	deadline = time(NULL) + 10;
	memset(seen, 0, sizeof(seen));
	while (time(NULL) < deadline) {
		struct pollfd pfd = {.fd = master, .events = POLLIN};
		if (waitpid(pid, &st, WNOHANG) == pid)
			break;
		if (poll(&pfd, 1, 100) > 0) {
			ssize_t r =
			    read(master, seen + got, sizeof(seen) - 1 - got);
			if (r > 0)
				got += (size_t)r;
			if (strstr(seen, "phrase") != NULL)
				break; /* prompted: it would wait forever */
		}
		st = -1;
	}
	if (st == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		st = -1;
	}
	CHECK(strstr(seen, "phrase") == NULL);
	CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(master);
	free(enc);
	free(pem);
}

/* ---- accessors ------------------------------------------------------ */

static void
test_subject_text(void)
{
	iotca_x509 *x;
	char s[256];

	REQUIRE(make_selfsigned("rdn.pem", "ec.key",
	                        "/C=CN/O=Acme/CN=Acme Root", "%s", "") == 0);
	REQUIRE((x = load("rdn.pem")) != NULL);
	CHECK_EQ_INT(iotca_x509_subject_text(x, s, sizeof(s)), IOTCA_OK);
	CHECK_EQ_STR(s, "CN=Acme Root,O=Acme,C=CN");
	/* exactly enough room, and one byte too little */
	CHECK_EQ_INT(iotca_x509_subject_text(x, s, 25), IOTCA_OK);
	CHECK_EQ_STR(s, "CN=Acme Root,O=Acme,C=CN");
	CHECK_EQ_INT(iotca_x509_subject_text(x, s, 24), IOTCA_ETOOBIG);
	CHECK(iotca_x509_subject_text(x, s, 0) != IOTCA_OK);
	iotca_x509_free(x);

	/* RFC 2253 escaping of special characters */
	REQUIRE(make_selfsigned("esc.pem", "ec.key", "/O=A,B\\+C/CN=x", "%s",
	                        "") == 0);
	REQUIRE((x = load("esc.pem")) != NULL);
	CHECK_EQ_INT(iotca_x509_subject_text(x, s, sizeof(s)), IOTCA_OK);
	CHECK_EQ_STR(s, "CN=x,O=A\\,B\\+C");
	iotca_x509_free(x);
}

static void
test_subject_der_is_issuer_der(void)
{
	iotca_x509 *ca, *leaf, *other;
	const uint8_t *s, *i;
	size_t sn, in;

	REQUIRE(
	    make_selfsigned("sd-ca.pem", "ca.key", "/C=CN/O=Acme/CN=Acme Root",
	                    "-addext basicConstraints=critical,CA:TRUE") == 0);
	REQUIRE(sh("openssl req -new -config min.cnf -key ec.key -subj "
	           "/CN=leaf -out sd.csr && openssl x509 -req -in sd.csr -CA "
	           "sd-ca.pem -CAkey ca.key -set_serial 7 -days 3 -out "
	           "sd-leaf.pem") == 0);
	/* same words, other order: another name */
	REQUIRE(make_selfsigned("sd-other.pem", "ca.key",
	                        "/CN=Acme Root/O=Acme/C=CN", "%s", "") == 0);
	ca = load("sd-ca.pem");
	leaf = load("sd-leaf.pem");
	other = load("sd-other.pem");
	REQUIRE(ca != NULL && leaf != NULL && other != NULL);

	s = iotca_x509_subject_der(ca, &sn);
	i = iotca_x509_issuer_der(leaf, &in);
	CHECK(sn > 10 && s[0] == 0x30); /* a SEQUENCE */
	CHECK(bytes_eq(s, sn, i, in));
	i = iotca_x509_issuer_der(ca, &in); /* self-signed */
	CHECK(bytes_eq(s, sn, i, in));
	i = iotca_x509_subject_der(leaf, &in);
	CHECK(!bytes_eq(s, sn, i, in));
	i = iotca_x509_subject_der(other, &in);
	CHECK(!bytes_eq(s, sn, i, in));
	iotca_x509_free(ca);
	iotca_x509_free(leaf);
	iotca_x509_free(other);
}

static void
test_subject_cn(void)
{
	iotca_x509 *x;
	char cn[128];

	REQUIRE(make_selfsigned("cn.pem", "ver.key", "/O=Acme/CN=" REGCODE,
	                        "%s", "") == 0);
	REQUIRE((x = load("cn.pem")) != NULL);
	CHECK_EQ_INT(iotca_x509_subject_cn(x, cn, sizeof(cn)), IOTCA_OK);
	CHECK_EQ_STR(cn, REGCODE);
	CHECK_EQ_INT(iotca_x509_subject_cn(x, cn, 65), IOTCA_OK);
	CHECK_EQ_INT(iotca_x509_subject_cn(x, cn, 64), IOTCA_ETOOBIG);
	iotca_x509_free(x);

	REQUIRE(make_selfsigned("nocn.pem", "ec.key", "/C=CN/O=Acme", "%s",
	                        "") == 0);
	REQUIRE((x = load("nocn.pem")) != NULL);
	strcpy(cn, "untouched");
	CHECK_EQ_INT(iotca_x509_subject_cn(x, cn, sizeof(cn)), IOTCA_ENOENT);
	iotca_x509_free(x);

	/* several CNs: the last one */
	REQUIRE(make_selfsigned("twocn.pem", "ec.key", "/CN=first/CN=last",
	                        "%s", "") == 0);
	REQUIRE((x = load("twocn.pem")) != NULL);
	CHECK_EQ_INT(iotca_x509_subject_cn(x, cn, sizeof(cn)), IOTCA_OK);
	CHECK_EQ_STR(cn, "last");
	iotca_x509_free(x);

	/* UTF-8 comes back as UTF-8 */
	REQUIRE(make_selfsigned("utf8.pem", "ec.key", "/CN=M\xc3\xbcller",
	                        "-utf8") == 0);
	REQUIRE((x = load("utf8.pem")) != NULL);
	CHECK_EQ_INT(iotca_x509_subject_cn(x, cn, sizeof(cn)), IOTCA_OK);
	CHECK_EQ_STR(cn, "M\xc3\xbcller");
	iotca_x509_free(x);
}

/* Checks iotca_x509_serial of a cert made with -set_serial arg. */
static void
check_serial(const char *arg, const char *want)
{
	char fromcli[512], norm[IOTCA_X509_SN_HEX_MAX], sn[64];
	iotca_errbuf eb;
	iotca_x509 *x;

	if (make_selfsigned("sn.pem", "ec.key", "/CN=sn", "-set_serial %s",
	                    arg) != 0 ||
	    (x = load("sn.pem")) == NULL) {
		fprintf(stderr, "cannot make a certificate with serial %s\n",
		        arg);
		CHECK(0);
		return;
	}
	memset(sn, 'Z', sizeof(sn));
	iotca_x509_serial(x, sn);
	CHECK_EQ_STR(sn, want);
	/* the SN users copy from openssl normalises to the same string */
	if (want[0] != '\0' && want[0] != '-' &&
	    sh_line(fromcli, "openssl x509 -in sn.pem -noout -serial") == 0 &&
	    strncmp(fromcli, "serial=", 7) == 0) {
		iotca_err rc = iotca_x509_sn_normalize(
		    fromcli + 7, strlen(fromcli + 7), norm, &eb);
		CHECK_EQ_INT(rc, IOTCA_OK);
		if (rc == IOTCA_OK)
			CHECK_EQ_STR(norm, want);
	}
	iotca_x509_free(x);
}

static void
test_serial(void)
{
	check_serial("0x00ABCDEF", "ABCDEF");
	check_serial("1", "1");
	check_serial("0", "0");
	check_serial("0x0A", "A");
	check_serial("-5", "-5"); /* RFC 5280 forbids it; shown, not hidden */
	/* 20 octets, top bit clear and set (DER adds a 00 octet) */
	check_serial("0x7F0102030405060708090A0B0C0D0E0F10111213",
	             "7F0102030405060708090A0B0C0D0E0F10111213");
	check_serial("0xFF0102030405060708090A0B0C0D0E0F10111213",
	             "FF0102030405060708090A0B0C0D0E0F10111213");
	/* over 20 octets (RFC 5280 forbids it, OpenSSL makes it): no
	 * normal form; never a truncated one that names another device */
	check_serial("0x0102030405060708090A0B0C0D0E0F101112131415", "");
	check_serial("0x7F0102030405060708090A0B0C0D0E0F1011121314", "");
}

static void
test_fingerprint(void)
{
	char line[512], want[IOTCA_X509_FP_HEX], fp[IOTCA_X509_FP_HEX];
	const char *p;
	size_t o = 0;
	iotca_x509 *x;

	REQUIRE(make_selfsigned("fp.pem", "ca.key", "/CN=fp", "%s", "") == 0);
	REQUIRE(sh_line(line, "openssl x509 -in fp.pem -noout -fingerprint "
	                      "-sha256") == 0);
	REQUIRE((p = strchr(line, '=')) != NULL);
	for (p++; *p != '\0' && o < 64; p++)
		if (*p != ':')
			want[o++] =
			    (char)(*p >= 'A' && *p <= 'F' ? *p + 32 : *p);
	want[o] = '\0';
	CHECK_EQ_INT(o, 64);
	REQUIRE((x = load("fp.pem")) != NULL);
	iotca_x509_fingerprint(x, fp);
	CHECK_EQ_STR(fp, want);
	iotca_x509_free(x);
}

/* "notBefore=Mar  5 12:00:00 2025 GMT" -> unix seconds. */
static int64_t
cli_date(const char *line)
{
	struct tm tm;
	const char *p = strchr(line, '=');

	memset(&tm, 0, sizeof(tm));
	if (p == NULL || strptime(p + 1, "%b %d %H:%M:%S %Y GMT", &tm) == NULL)
		return -1;
	return (int64_t)timegm(&tm);
}

static void
test_dates(void)
{
	char nb[512], na[512];
	iotca_x509 *x;
	time_t t0 = time(NULL);

	REQUIRE(make_selfsigned("dates.pem", "ec.key", "/CN=dates",
	                        "-days 300") == 0);
	REQUIRE(sh_line(nb, "openssl x509 -in dates.pem -noout -startdate") ==
	        0);
	REQUIRE(sh_line(na, "openssl x509 -in dates.pem -noout -enddate") == 0);
	REQUIRE((x = load("dates.pem")) != NULL);
	CHECK_EQ_INT(iotca_x509_not_before(x), cli_date(nb));
	CHECK_EQ_INT(iotca_x509_not_after(x), cli_date(na));
	CHECK(iotca_x509_not_before(x) >= (int64_t)t0 - 5 &&
	      iotca_x509_not_before(x) <= (int64_t)time(NULL) + 5);
	CHECK_EQ_INT(iotca_x509_not_after(x) - iotca_x509_not_before(x),
	             300 * 86400);
	iotca_x509_free(x);

	/* a date past 2049 is a GeneralizedTime */
	REQUIRE(make_selfsigned("far.pem", "ec.key", "/CN=far",
	                        "-days 36500") == 0);
	REQUIRE(sh_line(na, "openssl x509 -in far.pem -noout -enddate") == 0);
	REQUIRE((x = load("far.pem")) != NULL);
	CHECK(cli_date(na) > 4102444800LL); /* after 2100-01-01 */
	CHECK_EQ_INT(iotca_x509_not_after(x), cli_date(na));
	iotca_x509_free(x);
}

static void
test_key_info(void)
{
	struct {
		const char *key, *alg;
		int bits, rsa;
	} k[] = {{"ca.key", "RSA", 2048, 1},
	         {"ec.key", "EC", 256, 0},
	         {"ed.key", "ED25519", 256, 0}};
	char alg[16], name[32];
	iotca_x509 *x;
	size_t i;
	int bits;

	for (i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
		snprintf(name, sizeof(name), "ki%zu.pem", i);
		REQUIRE(make_selfsigned(name, k[i].key, "/CN=ki", "%s", "") ==
		        0);
		REQUIRE((x = load(name)) != NULL);
		bits = -1;
		memset(alg, 'Z', sizeof(alg));
		iotca_x509_key_info(x, alg, &bits);
		CHECK_EQ_STR(alg, k[i].alg);
		CHECK_EQ_INT(bits, k[i].bits);
		CHECK_EQ_INT(iotca_x509_key_is_rsa(x), k[i].rsa);
		iotca_x509_free(x);
	}
}

static void
test_to_pem_round_trip(void)
{
	iotca_x509 *x, *y = NULL;
	const uint8_t *a, *b;
	size_t an, bn;
	iotca_errbuf eb;
	char *pem, *file;

	REQUIRE(sh("openssl x509 -in rdn.pem -outform DER -out rt.der") == 0);
	REQUIRE((x = load("rt.der")) != NULL);
	REQUIRE((pem = iotca_x509_to_pem(x)) != NULL);
	CHECK(strncmp(pem, "-----BEGIN CERTIFICATE-----\n", 28) == 0);
	file = (char *)slurp_extra("rdn.pem", &an, 1);
	REQUIRE(file != NULL);
	file[an] = '\0';
	CHECK_EQ_STR(pem, file);
	CHECK_EQ_INT(iotca_x509_parse(pem, strlen(pem), "pem", &y, &eb),
	             IOTCA_OK);
	if (y != NULL) {
		a = iotca_x509_der(x, &an);
		b = iotca_x509_der(y, &bn);
		CHECK(bytes_eq(a, an, b, bn));
	}
	iotca_x509_free(y);
	iotca_x509_free(x);
	free(file);
	free(pem);
}

/* ---- check_ca ------------------------------------------------------- */

static void
check_ca_case(const char *name, const char *addext, iotca_err want,
              const char *msg)
{
	iotca_errbuf eb;
	iotca_x509 *x;

	if (make_selfsigned(name, "ca.key", "/CN=ca check", "%s", addext) !=
	        0 ||
	    (x = load(name)) == NULL) {
		fprintf(stderr, "cannot make %s\n", name);
		CHECK(0);
		return;
	}
	iotca_errbuf_clear(&eb);
	CHECK_EQ_INT(iotca_x509_check_ca(x, "CA certificate", &eb), want);
	if (msg != NULL) {
		CHECK_CONTAINS(eb.msg, msg);
		CHECK_CONTAINS(eb.msg, "CA certificate");
	}
	CHECK(ERR_peek_error() == 0);
	iotca_x509_free(x);
}

static void
test_check_ca(void)
{
	check_ca_case("ca1.pem", "-addext basicConstraints=critical,CA:TRUE",
	              IOTCA_OK, NULL);
	check_ca_case("ca2.pem", "-addext basicConstraints=CA:TRUE,pathlen:0",
	              IOTCA_OK, NULL);
	check_ca_case("ca3.pem",
	              "-addext basicConstraints=critical,CA:TRUE "
	              "-addext keyUsage=critical,keyCertSign,cRLSign",
	              IOTCA_OK, NULL);
	check_ca_case("ca4.pem", "-addext basicConstraints=critical,CA:FALSE",
	              IOTCA_EPRECOND, "not a CA");
	/* v1, no extensions at all (self-signed: OpenSSL itself would call
	 * it a CA; the rules do not) */
	check_ca_case("ca5.pem", "", IOTCA_EPRECOND, "not a CA");
	check_ca_case("ca6.pem", "-addext keyUsage=keyCertSign", IOTCA_EPRECOND,
	              "not a CA");
	check_ca_case("ca7.pem",
	              "-addext basicConstraints=critical,CA:TRUE "
	              "-addext keyUsage=critical,digitalSignature",
	              IOTCA_EPRECOND, "keyCertSign");
	check_ca_case("ca8.pem",
	              "-addext basicConstraints=critical,CA:TRUE "
	              "-addext keyUsage=cRLSign",
	              IOTCA_EPRECOND, "keyCertSign");
	/* a basicConstraints whose contents are not a SEQUENCE */
	check_ca_case("ca9.pem", "-addext basicConstraints=DER:01:02",
	              IOTCA_EINVAL, "malformed");
}

/* ---- check_validity ------------------------------------------------- */

static void
fmt_utc(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
test_check_validity(void)
{
	iotca_errbuf eb;
	iotca_x509 *x;
	int64_t nb, na;
	char when[32];
	time_t now;

	REQUIRE(make_selfsigned("v.crt", "ver.key", "/CN=" REGCODE, "%s", "") ==
	        0);
	REQUIRE(sh("openssl req -new -config min.cnf -key ver.key -subj "
	           "/CN=" REGCODE " -out v.csr && openssl x509 -req -in v.csr "
	           "-CA v.crt -CAkey ver.key -CAcreateserial -days 1 -out "
	           "v1.crt") == 0);
	REQUIRE((x = load("v1.crt")) != NULL);
	now = time(NULL); /* after openssl set notBefore */
	nb = iotca_x509_not_before(x);
	na = iotca_x509_not_after(x);
	CHECK_EQ_INT(na - nb, 86400);

	CHECK_EQ_INT(iotca_x509_check_validity(x, now,
	                                       "validation "
	                                       "certificate",
	                                       &eb),
	             IOTCA_OK);
	CHECK_EQ_INT(iotca_x509_check_validity(x, (time_t)nb, "v", &eb),
	             IOTCA_OK);
	CHECK_EQ_INT(iotca_x509_check_validity(x, (time_t)na, "v", &eb),
	             IOTCA_OK);

	iotca_errbuf_clear(&eb);
	CHECK_EQ_INT(iotca_x509_check_validity(x, now + 3 * 86400,
	                                       "validation certificate", &eb),
	             IOTCA_EPRECOND);
	fmt_utc(na, when);
	CHECK_CONTAINS(eb.msg, "validation certificate expired on ");
	CHECK_CONTAINS(eb.msg, when);
	CHECK_EQ_INT(iotca_x509_check_validity(x, (time_t)(na + 1), "v", &eb),
	             IOTCA_EPRECOND);
	CHECK_CONTAINS(eb.msg, "expired on");

	iotca_errbuf_clear(&eb);
	CHECK_EQ_INT(iotca_x509_check_validity(x, now - 10 * 365 * 86400,
	                                       "validation certificate", &eb),
	             IOTCA_EPRECOND);
	fmt_utc(nb, when);
	CHECK_CONTAINS(eb.msg, "validation certificate is not valid until ");
	CHECK_CONTAINS(eb.msg, when);
	CHECK_EQ_INT(iotca_x509_check_validity(x, (time_t)(nb - 1), "v", &eb),
	             IOTCA_EPRECOND);
	CHECK_CONTAINS(eb.msg, "not valid until");
	iotca_x509_free(x);
}

/* ---- check_signed_by ------------------------------------------------ */

static void
test_check_signed_by_reference_flow(void)
{
	iotca_x509 *ca, *ver, *evil, *lookalike, *self;
	const uint8_t *a, *b;
	size_t an, bn;
	iotca_errbuf eb;
	char cn[80];

	/* the CA the user already has */
	REQUIRE(sh("openssl genrsa -out yourPrivateKey.key 2048") == 0);
	REQUIRE(make_selfsigned("yourCA.cer", "yourPrivateKey.key",
	                        "/C=CN/O=Acme/CN=Acme Root",
	                        "-days 3650 -addext "
	                        "basicConstraints=critical,CA:TRUE") == 0);
	/* the three steps of the reference page, with -subj for the prompt */
	REQUIRE(sh("openssl genrsa -out verificationCert.key 2048") == 0);
	REQUIRE(sh("openssl req -new -key verificationCert.key -out "
	           "verificationCert.csr -subj /CN=" REGCODE) == 0);
	REQUIRE(sh("openssl x509 -req -in verificationCert.csr -CA yourCA.cer "
	           "-CAkey yourPrivateKey.key -CAcreateserial -out "
	           "verificationCert.crt -days 300 -sha512") == 0);
	/* a look-alike CA: same subject, another key, signs the same CSR */
	REQUIRE(sh("openssl genrsa -out evil.key 2048") == 0);
	REQUIRE(
	    make_selfsigned("evil.cer", "evil.key", "/C=CN/O=Acme/CN=Acme Root",
	                    "-addext basicConstraints=critical,CA:TRUE") == 0);
	REQUIRE(sh("openssl x509 -req -in verificationCert.csr -CA evil.cer "
	           "-CAkey evil.key -CAcreateserial -out lookalike.crt -days "
	           "300 -sha512") == 0);
	/* the validation certificate self-signed with its own key */
	REQUIRE(make_selfsigned("selfver.crt", "verificationCert.key",
	                        "/CN=" REGCODE, "%s", "") == 0);

	ca = load("yourCA.cer");
	ver = load("verificationCert.crt");
	evil = load("evil.cer");
	lookalike = load("lookalike.crt");
	self = load("selfver.crt");
	REQUIRE(ca && ver && evil && lookalike && self);

	CHECK_EQ_INT(iotca_x509_check_ca(ca, "CA certificate", &eb), IOTCA_OK);
	CHECK_EQ_INT(iotca_x509_check_validity(ver, time(NULL), "v", &eb),
	             IOTCA_OK);
	CHECK_EQ_INT(iotca_x509_subject_cn(ver, cn, sizeof(cn)), IOTCA_OK);
	CHECK_EQ_STR(cn, REGCODE);
	CHECK_EQ_INT(iotca_x509_check_signed_by(ver, ca,
	                                        "validation "
	                                        "certificate",
	                                        &eb),
	             IOTCA_OK);
	CHECK_EQ_INT(iotca_x509_check_signed_by(ca, ca, "CA", &eb), IOTCA_OK);

	/* the look-alike names the same issuer, byte for byte ... */
	a = iotca_x509_subject_der(ca, &an);
	b = iotca_x509_issuer_der(lookalike, &bn);
	CHECK(bytes_eq(a, an, b, bn));
	b = iotca_x509_subject_der(evil, &bn);
	CHECK(bytes_eq(a, an, b, bn));
	/* ... but its signature is not the CA's */
	iotca_errbuf_clear(&eb);
	CHECK_EQ_INT(iotca_x509_check_signed_by(lookalike, ca,
	                                        "validation certificate", &eb),
	             IOTCA_EPRECOND);
	CHECK_CONTAINS(eb.msg, "validation certificate is not signed by");
	CHECK_EQ_INT(iotca_x509_check_signed_by(lookalike, evil, "v", &eb),
	             IOTCA_OK);
	CHECK_EQ_INT(iotca_x509_check_signed_by(ver, evil, "v", &eb),
	             IOTCA_EPRECOND);
	CHECK_CONTAINS(eb.msg, "not signed by");

	iotca_errbuf_clear(&eb);
	CHECK_EQ_INT(iotca_x509_check_signed_by(self, ca,
	                                        "validation "
	                                        "certificate",
	                                        &eb),
	             IOTCA_EPRECOND);
	CHECK_CONTAINS(eb.msg, "not signed by");
	/* the CA is not signed by its validation certificate */
	CHECK_EQ_INT(iotca_x509_check_signed_by(ca, ver, "CA", &eb),
	             IOTCA_EPRECOND);
	CHECK(ERR_peek_error() == 0);

	iotca_x509_free(ca);
	iotca_x509_free(ver);
	iotca_x509_free(evil);
	iotca_x509_free(lookalike);
	iotca_x509_free(self);
}

static void
test_check_signed_by_ec_issuer(void)
{
	iotca_x509 *ca, *leaf, *rsa;
	iotca_errbuf eb;

	REQUIRE(make_selfsigned("ecca.pem", "ec.key", "/CN=EC CA",
	                        "-addext basicConstraints=critical,CA:TRUE") ==
	        0);
	REQUIRE(sh("openssl req -new -key ca.key -subj /CN=dev -out dev.csr "
	           "&& openssl x509 -req -in dev.csr -CA ecca.pem -CAkey "
	           "ec.key -set_serial 0x0a1b2c -days 10 -out dev.pem") == 0);
	ca = load("ecca.pem");
	leaf = load("dev.pem");
	rsa = load("yourCA.cer");
	REQUIRE(ca && leaf && rsa);
	CHECK_EQ_INT(iotca_x509_check_signed_by(leaf, ca, "device", &eb),
	             IOTCA_OK);
	/* an RSA signature checked with an EC key and the other way */
	CHECK_EQ_INT(iotca_x509_check_signed_by(leaf, rsa, "device", &eb),
	             IOTCA_EPRECOND);
	CHECK_EQ_INT(iotca_x509_check_signed_by(rsa, leaf, "CA", &eb),
	             IOTCA_EPRECOND);
	CHECK(iotca_x509_key_is_rsa(leaf));
	CHECK(!iotca_x509_key_is_rsa(ca));
	iotca_x509_free(ca);
	iotca_x509_free(leaf);
	iotca_x509_free(rsa);
}

/* ---- sn_normalize --------------------------------------------------- */

static void
sn_ok(const char *in, const char *want)
{
	char out[IOTCA_X509_SN_HEX_MAX];
	iotca_errbuf eb;
	iotca_err rc;

	iotca_errbuf_clear(&eb);
	rc = iotca_x509_sn_normalize(in, strlen(in), out, &eb);
	if (rc != IOTCA_OK)
		fprintf(stderr, "sn_normalize(\"%s\"): %s\n", in, eb.msg);
	CHECK_EQ_INT(rc, IOTCA_OK);
	if (rc == IOTCA_OK)
		CHECK_EQ_STR(out, want);
}

static void
sn_bad(const char *in, size_t len, const char *msg)
{
	char out[IOTCA_X509_SN_HEX_MAX];
	iotca_errbuf eb;

	iotca_errbuf_clear(&eb);
	strcpy(out, "untouched");
	CHECK_EQ_INT(iotca_x509_sn_normalize(in, len, out, &eb), IOTCA_EINVAL);
	CHECK_EQ_INT(eb.code, IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, msg);
	CHECK_EQ_STR(out, "untouched");
}

static void
test_sn_normalize(void)
{
	char out[IOTCA_X509_SN_HEX_MAX];
	iotca_errbuf eb;

	sn_ok("0a1b2c", "A1B2C");
	sn_ok("0A1B2C", "A1B2C");
	sn_ok("0x00FF", "FF");
	sn_ok("0X00ff", "FF");
	sn_ok("0x01:A3:ff", "1A3FF"); /* prefix and separators together */
	sn_ok("00:0a:ff", "AFF");
	sn_ok("0a:1B:2c", "A1B2C");
	sn_ok("aBcDeF", "ABCDEF");
	sn_ok("0", "0");
	sn_ok("000", "0");
	sn_ok("00:00", "0");
	sn_ok("0x0", "0");
	sn_ok("1", "1");
	sn_ok("abc", "ABC");
	/* a one-digit group is one octet: a:b is 0A 0B */
	sn_ok("a:b", "A0B");
	sn_ok("1:02:3", "10203");
	/* 20 octets, with and without separators and a 00 sign octet */
	sn_ok("ff0102030405060708090a0b0c0d0e0f10111213",
	      "FF0102030405060708090A0B0C0D0E0F10111213");
	sn_ok("00ff0102030405060708090a0b0c0d0e0f10111213",
	      "FF0102030405060708090A0B0C0D0E0F10111213");
	sn_ok("00:ff:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:10:11:12:13",
	      "FF0102030405060708090A0B0C0D0E0F10111213");
	sn_ok("0xff0102030405060708090a0b0c0d0e0f10111213",
	      "FF0102030405060708090A0B0C0D0E0F10111213");

	sn_bad("010102030405060708090a0b0c0d0e0f1011121314", 42,
	       "longer than 20 octets");
	sn_bad("01:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:10:11:12:13:14",
	       62, "longer than 20 octets");
	sn_bad("1ff0102030405060708090a0b0c0d0e0f10111213", 41,
	       "longer than 20 octets");
	sn_bad("", 0, "empty");
	sn_bad("0x", 2, "empty");
	sn_bad("xyz", 3, "'x'");
	sn_bad("0a1g", 4, "'g'");
	sn_bad("0a 1b", 5, "' '");
	sn_bad("0a\n", 3, "'?'");
	sn_bad("-1", 2, "'-'");
	sn_bad("0a\0"
	       "1b",
	       5, "not a hex digit");
	sn_bad("0x-1", 4, "'-'");
	sn_bad("0a::0b", 6, "empty group");
	sn_bad(":0a", 3, "empty group");
	sn_bad("0a:", 3, "empty group");
	sn_bad(":", 1, "empty group");
	sn_bad("abc:def", 7, "1 or 2 hex digits");
	sn_bad("0a:bcd", 6, "1 or 2 hex digits");

	/* len is honoured: only "0a" is read */
	CHECK_EQ_INT(iotca_x509_sn_normalize("0aZZ", 2, out, &eb), IOTCA_OK);
	CHECK_EQ_STR(out, "A");
	/* a NULL errbuf is allowed */
	CHECK_EQ_INT(iotca_x509_sn_normalize("zz", 2, out, NULL), IOTCA_EINVAL);
}

/* Normalising a normal form gives it back. */
static void
test_sn_normalize_idempotent(void)
{
	static const char *in[] = {
	    "0a1b2c", "00:0a:ff", "0x00FF",
	    "a:b",    "0",        "ff0102030405060708090a0b0c0d0e0f10111213"};
	char a[IOTCA_X509_SN_HEX_MAX], b[IOTCA_X509_SN_HEX_MAX];
	iotca_errbuf eb;
	size_t i;

	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		REQUIRE(iotca_x509_sn_normalize(in[i], strlen(in[i]), a, &eb) ==
		        IOTCA_OK);
		CHECK_EQ_INT(iotca_x509_sn_normalize(a, strlen(a), b, &eb),
		             IOTCA_OK);
		CHECK_EQ_STR(a, b);
	}
}

/* ---- reference counting --------------------------------------------- */

static void *
ref_worker(void *arg)
{
	iotca_x509 *x = arg;
	char fp[IOTCA_X509_FP_HEX];
	int i;

	for (i = 0; i < 1000; i++) {
		iotca_x509 *r = iotca_x509_ref(x);
		iotca_x509_fingerprint(r, fp);
		iotca_x509_free(r);
	}
	return NULL;
}

static void
test_refcount(void)
{
	char fp[IOTCA_X509_FP_HEX];
	pthread_t t[4];
	iotca_x509 *x, *r;
	int i;

	REQUIRE((x = load("rdn.pem")) != NULL);
	r = iotca_x509_ref(x);
	CHECK(r == x);
	iotca_x509_free(x);
	/* still alive through the second reference (ASan would object) */
	iotca_x509_fingerprint(r, fp);
	CHECK_EQ_INT(strlen(fp), 64);
	for (i = 0; i < 4; i++)
		CHECK(pthread_create(&t[i], NULL, ref_worker, r) == 0);
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	iotca_x509_free(r);
	iotca_x509_free(NULL);
}

/* ---- setup ---------------------------------------------------------- */

static int
setup(void)
{
	FILE *f;
	char path[128];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_x509.XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return -1;
	}
	/* a config with no default extensions, so each test says its own */
	snprintf(path, sizeof(path), "%s/min.cnf", tmpdir);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fputs("[req]\ndistinguished_name = dn\n[dn]\n", f);
	fclose(f);
	return sh("openssl genrsa -out ca.key 2048 && "
	          "openssl genrsa -out ver.key 2048 && "
	          "openssl ecparam -name prime256v1 -genkey -noout -out ec.key "
	          "&& openssl genpkey -algorithm ED25519 -out ed.key");
}

int
main(void)
{
	char cmd[128];
	int rc;

	if (setup() != 0) {
		fprintf(stderr, "setup failed; is the openssl command "
		                "installed?\n");
		return 1;
	}
	RUN(test_parse_pem_and_der_agree);
	RUN(test_parse_pem_whitespace_and_crlf);
	RUN(test_parse_pem_trailing_junk);
	RUN(test_parse_two_certs);
	RUN(test_parse_key_or_csr_is_not_a_cert);
	RUN(test_parse_der_trailing_bytes);
	RUN(test_parse_garbage_empty_and_size_cap);
	RUN(test_parse_truncated);
	RUN(test_parse_malformed_dates);
	RUN(test_parse_non_der_names);
	RUN(test_parse_encrypted_pem_never_prompts);
	RUN(test_subject_text);
	RUN(test_subject_der_is_issuer_der);
	RUN(test_subject_cn);
	RUN(test_serial);
	RUN(test_fingerprint);
	RUN(test_dates);
	RUN(test_key_info);
	RUN(test_to_pem_round_trip);
	RUN(test_check_ca);
	RUN(test_check_validity);
	RUN(test_check_signed_by_reference_flow);
	RUN(test_check_signed_by_ec_issuer);
	RUN(test_sn_normalize);
	RUN(test_sn_normalize_idempotent);
	RUN(test_refcount);
	rc = test_summary();
	if (rc != 0) { /* what openssl said, for the failed commands */
		snprintf(cmd, sizeof(cmd), "cat '%s/log' >&2", tmpdir);
		(void)!system(cmd);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	return rc;
}
