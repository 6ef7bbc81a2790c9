/*
 * svc.c - what the gRPC service handlers share: etcd reads into JSON,
 * pagination, status mapping, input checks and small encodings.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "svc/svc.h"

iotca_err
iotca_svc_etcd_fail(iotca_rpc_call *call, const iotca_errbuf *eb,
                    const char *doing)
{
	/* etcd unreachable is UNAVAILABLE (retry later); anything else etcd
	 * said is our problem, not the caller's. */
	iotca_err code =
	    eb->code == IOTCA_EUNAVAIL || eb->code == IOTCA_ETIMEDOUT
	        ? IOTCA_EUNAVAIL
	        : IOTCA_EINTERNAL;

	return iotca_rpc_call_fail(call, code, "%s: %s", doing,
	                           iotca_errbuf_msg(eb));
}

iotca_err
iotca_svc_fail_eb(iotca_rpc_call *call, const iotca_errbuf *eb,
                  const char *doing)
{
	switch (eb->code) {
	case IOTCA_EUNAVAIL:
	case IOTCA_ETIMEDOUT:
	case IOTCA_EPROTO:
	case IOTCA_EOVERFLOW:
	case IOTCA_EINTERNAL:
		return iotca_svc_etcd_fail(call, eb, doing);
	default:
		return iotca_rpc_call_fail_eb(call, eb);
	}
}

iotca_err
iotca_svc_check_id(iotca_rpc_call *call, const char *id, const char *field,
                   const char *object)
{
	if (id[0] == '\0')
		return iotca_rpc_call_fail(call, IOTCA_EINVAL, "%s is empty",
		                           field);
	if (!iotca_svc_valid_chars(id, 1, IOTCA_ID_MAX, "-"))
		return iotca_rpc_call_fail(call, IOTCA_ENOENT,
		                           "no %s with id '%.64s'", object, id);
	return IOTCA_OK;
}

iotca_err
iotca_svc_get_json(iotca_etcd *etcd, iotca_rpc_call *call, const char *key,
                   json_t **out, int *found, int64_t *mod_rev)
{
	iotca_etcd_kv kv;
	iotca_errbuf eb;
	json_error_t jerr;

	*found = 0;
	if (iotca_etcd_get(etcd, key, strlen(key), &kv, found, &eb) != IOTCA_OK)
		return iotca_svc_etcd_fail(call, &eb, "reading from etcd");
	if (!*found)
		return IOTCA_OK;
	*out = json_loadb(kv.value, kv.value_len, 0, &jerr);
	if (mod_rev != NULL)
		*mod_rev = kv.mod_revision;
	iotca_etcd_kv_free(&kv);
	if (*out == NULL)
		return iotca_rpc_call_fail(call, IOTCA_EINTERNAL,
		                           "record %s is not valid JSON: %s",
		                           key, jerr.text);
	return IOTCA_OK;
}

iotca_err
iotca_svc_page(iotca_etcd *etcd, iotca_rpc_call *call, const char *prefix,
               int32_t page_size, const char *page_token, iotca_svc_page_fn fn,
               void *arg, char **next)
{
	iotca_etcd_range_req req = {0};
	iotca_etcd_range_result res = {0};
	char start[256], end[256];
	iotca_errbuf eb;
	size_t plen = strlen(prefix), i, take;
	iotca_err rc = IOTCA_OK;

	/* Contract: negative is INVALID_ARGUMENT, 0 the default, above the
	 * maximum the maximum. */
	if (page_size < 0)
		return iotca_rpc_call_fail(call, IOTCA_EINVAL,
		                           "page_size must not be negative");
	if (page_size == 0)
		page_size = IOTCA_SVC_PAGE_DEFAULT;
	if (page_size > IOTCA_SVC_PAGE_MAX)
		page_size = IOTCA_SVC_PAGE_MAX;
	if (!iotca_svc_valid_chars(page_token, 0, 200, "-.@:/"))
		return iotca_rpc_call_fail(call, IOTCA_EINVAL,
		                           "page_token is not one this service "
		                           "returned");
	/* After the token's key: the token with a NUL appended. */
	snprintf(start, sizeof(start), "%s%s", prefix, page_token);
	req.key = start;
	req.key_len = strlen(start) + (page_token[0] != '\0');
	req.range_end = end;
	req.range_end_len = iotca_etcd_prefix_end(prefix, plen, end);
	req.limit = page_size + 1;
	if (iotca_etcd_range(etcd, &req, &res, &eb) != IOTCA_OK)
		return iotca_svc_etcd_fail(call, &eb, "listing from etcd");
	take = res.n > (size_t)page_size ? (size_t)page_size : res.n;
	for (i = 0; i < take && rc == IOTCA_OK; i++)
		rc = fn(call, &res.kvs[i], arg);
	*next = "";
	if (rc == IOTCA_OK && res.n > (size_t)page_size && take > 0)
		*next = iotca_arena_strdup(iotca_rpc_call_arena(call),
		                           res.kvs[take - 1].key + plen);
	iotca_etcd_range_result_free(&res);
	return rc;
}

char *
iotca_svc_json_text(const json_t *j)
{
	return json_dumps(j, JSON_COMPACT);
}

int
iotca_svc_valid_chars(const char *s, size_t min, size_t max, const char *extra)
{
	size_t n = strlen(s), i;

	if (n < min || n > max)
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' &&
		    strchr(extra, s[i]) == NULL)
			return 0;
	return 1;
}

const char *
iotca_svc_json_str(const json_t *j, const char *key)
{
	const char *s = json_string_value(json_object_get(j, key));

	return s != NULL ? s : "";
}

int64_t
iotca_svc_json_int(const json_t *j, const char *key)
{
	return (int64_t)json_integer_value(json_object_get(j, key));
}

char *
iotca_svc_b64(const uint8_t *p, size_t n)
{
	char *s = malloc(4 * ((n + 2) / 3) + 1);

	if (s != NULL)
		EVP_EncodeBlock((unsigned char *)s, p, (int)n);
	return s;
}

iotca_err
iotca_svc_unb64(iotca_arena *a, const char *s, ProtobufCBinaryData *out)
{
	size_t n = strlen(s), pad = 0;
	int len;

	out->len = 0;
	out->data = NULL;
	if (n == 0)
		return IOTCA_OK;
	if (n % 4 != 0 || (out->data = iotca_arena_alloc(a, n)) == NULL)
		return IOTCA_EINVAL;
	if ((len = EVP_DecodeBlock(out->data, (const unsigned char *)s,
	                           (int)n)) < 0)
		return IOTCA_EINVAL;
	while (pad < 2 && n > pad && s[n - 1 - pad] == '=')
		pad++;
	out->len = (size_t)len - pad;
	return IOTCA_OK;
}

void
iotca_svc_sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned int len = 0, i;

	EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}
