/*
 * etcd_json.c - what goes over the wire to etcd's JSON gateway, both ways:
 * base64, request JSON, the txn builder and the reply parsers.
 *
 * Nothing here does I/O or keeps state; every parser takes the reply bytes
 * and fills a result, so the fuzz target can call them all. The gateway's
 * quirks (etcd 3.4): int64 fields come as strings (numbers are accepted
 * too), fields at their default value are left out (no "kvs" when nothing
 * matched, no "succeeded" when a txn failed, no "type" on PUT events), and
 * bytes are standard base64. Anything else is IOTCA_EPROTO, never a crash.
 *
 * Strings from json_dumps are released with free(): iotca never installs
 * its own jansson allocator.
 */
#include "etcd/etcd_int.h"
#include "buf/buf.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

/* ---- base64 ---- */

char *
etcd_b64_encode(const void *p, size_t n, size_t *out_len)
{
	size_t len;
	char *s;

	if (n > (size_t)INT_MAX / 4 * 3 - 3)
		return NULL;
	len = (n + 2) / 3 * 4;
	if ((s = malloc(len + 1)) == NULL)
		return NULL;
	if (n == 0)
		s[0] = '\0';
	else
		EVP_EncodeBlock((unsigned char *)s, p, (int)n);
	if (out_len != NULL)
		*out_len = len;
	return s;
}

static int
b64_char_ok(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* EVP_DecodeBlock accepts '=' anywhere and whitespace at the ends, and
 * counts padding in its result, so the input is checked here first and the
 * padding subtracted afterwards. */
iotca_err
etcd_b64_decode(const char *s, size_t n, char **out, size_t *out_len)
{
	size_t pad = 0, i, full;
	unsigned char *buf;

	if (n % 4 != 0 || n > (size_t)INT_MAX)
		return IOTCA_EPROTO;
	if (n > 0 && s[n - 1] == '=')
		pad = (s[n - 2] == '=') ? 2 : 1;
	for (i = 0; i < n - pad; i++)
		if (!b64_char_ok((unsigned char)s[i]))
			return IOTCA_EPROTO;
	full = n / 4 * 3;
	if ((buf = malloc(full + 1)) == NULL)
		return IOTCA_ENOMEM;
	if (n > 0 && EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n) !=
	                 (int)full) {
		free(buf);
		return IOTCA_EPROTO;
	}
	buf[full - pad] = '\0';
	*out = (char *)buf;
	*out_len = full - pad;
	return IOTCA_OK;
}

/* ---- building request JSON ---- */

static json_t *
json_b64(const void *p, size_t n)
{
	size_t len;
	char *s;
	json_t *j;

	if ((s = etcd_b64_encode(n ? p : "", n, &len)) == NULL)
		return NULL;
	j = json_stringn_nocheck(s, len);
	free(s);
	return j;
}

/* The json_object_set_new calls below steal the value even on failure
 * (and fail on a NULL value), so a chain of them needs one check. */
static int
json_put_b64(json_t *o, const char *name, const void *p, size_t n)
{
	return json_object_set_new(o, name, json_b64(p, n));
}

static int
json_put_int(json_t *o, const char *name, int64_t n)
{
	return json_object_set_new(o, name, json_integer((json_int_t)n));
}

/* key and, when there is one, range_end. */
static int
json_put_range(json_t *o, const char *key, size_t key_len,
               const char *range_end, size_t range_end_len)
{
	if (json_put_b64(o, "key", key, key_len) != 0)
		return -1;
	if (range_end == NULL || range_end_len == 0)
		return 0;
	return json_put_b64(o, "range_end", range_end, range_end_len);
}

/* Serialises o (and releases it) unless building it failed. */
static iotca_err
json_finish(json_t *o, int failed, char **out)
{
	char *s = NULL;

	if (o != NULL && !failed)
		s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s == NULL)
		return IOTCA_ENOMEM;
	*out = s;
	return IOTCA_OK;
}

iotca_err
etcd_json_range_req(const iotca_etcd_range_req *req, char **out)
{
	json_t *o = json_object();
	int bad;

	if (o == NULL)
		return IOTCA_ENOMEM;
	bad = json_put_range(o, req->key, req->key_len, req->range_end,
	                     req->range_end_len);
	if (req->limit > 0)
		bad |= json_put_int(o, "limit", req->limit);
	if (req->revision > 0)
		bad |= json_put_int(o, "revision", req->revision);
	if (req->keys_only)
		bad |= json_object_set_new(o, "keys_only", json_true());
	if (req->count_only)
		bad |= json_object_set_new(o, "count_only", json_true());
	return json_finish(o, bad, out);
}

iotca_err
etcd_json_put_req(const char *key, size_t key_len, const char *value,
                  size_t value_len, int64_t lease, char **out)
{
	json_t *o = json_object();
	int bad;

	if (o == NULL)
		return IOTCA_ENOMEM;
	bad = json_put_b64(o, "key", key, key_len);
	bad |= json_put_b64(o, "value", value, value_len);
	if (lease != 0)
		bad |= json_put_int(o, "lease", lease);
	return json_finish(o, bad, out);
}

iotca_err
etcd_json_delete_req(const char *key, size_t key_len, const char *range_end,
                     size_t range_end_len, char **out)
{
	json_t *o = json_object();

	if (o == NULL)
		return IOTCA_ENOMEM;
	return json_finish(
	    o, json_put_range(o, key, key_len, range_end, range_end_len), out);
}

iotca_err
etcd_json_num_req(const char *field, int64_t n, char **out)
{
	json_t *o = json_object();

	if (o == NULL)
		return IOTCA_ENOMEM;
	return json_finish(o, json_put_int(o, field, n), out);
}

iotca_err
etcd_json_watch_req(const char *key, size_t key_len, const char *range_end,
                    size_t range_end_len, int64_t start_revision, char **out)
{
	json_t *o = json_object(), *c = json_object();
	int bad;

	if (o == NULL || c == NULL) {
		json_decref(c);
		return json_finish(o, 1, out);
	}
	bad = json_put_range(c, key, key_len, range_end, range_end_len);
	if (start_revision > 0)
		bad |= json_put_int(c, "start_revision", start_revision);
	bad |= json_object_set_new(c, "prev_kv", json_true());
	/* an idle stream gets etcd's progress notifications (see watch.c) */
	bad |= json_object_set_new(c, "progress_notify", json_true());
	bad |= json_object_set_new(o, "create_request", c);
	return json_finish(o, bad, out);
}

/* ---- transactions: the builder ---- */

static const char *const cmp_target_name[] = {
    [IOTCA_ETCD_CMP_VERSION] = "VERSION", [IOTCA_ETCD_CMP_CREATE] = "CREATE",
    [IOTCA_ETCD_CMP_MOD] = "MOD",         [IOTCA_ETCD_CMP_VALUE] = "VALUE",
    [IOTCA_ETCD_CMP_LEASE] = "LEASE",
};

static const char *const cmp_target_field[] = {
    [IOTCA_ETCD_CMP_VERSION] = "version",
    [IOTCA_ETCD_CMP_CREATE] = "create_revision",
    [IOTCA_ETCD_CMP_MOD] = "mod_revision",
    [IOTCA_ETCD_CMP_VALUE] = "value",
    [IOTCA_ETCD_CMP_LEASE] = "lease",
};

static const char *const cmp_op_name[] = {
    [IOTCA_ETCD_EQUAL] = "EQUAL",
    [IOTCA_ETCD_NOT_EQUAL] = "NOT_EQUAL",
    [IOTCA_ETCD_GREATER] = "GREATER",
    [IOTCA_ETCD_LESS] = "LESS",
};

/* Per-item JSON around the base64 (names, quotes, numbers). */
#define TXN_ITEM_OVERHEAD 64
#define TXN_BASE_BYTES    48

iotca_err
iotca_etcd_txn_create(iotca_etcd_txn **out)
{
	iotca_etcd_txn *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return IOTCA_ENOMEM;
	t->bytes = TXN_BASE_BYTES;
	*out = t;
	return IOTCA_OK;
}

void
iotca_etcd_txn_destroy(iotca_etcd_txn *t)
{
	size_t i, b;

	if (t == NULL)
		return;
	for (i = 0; i < t->n_cmps; i++) {
		free(t->cmps[i].key);
		free(t->cmps[i].value);
	}
	free(t->cmps);
	for (b = 0; b < 2; b++) {
		for (i = 0; i < t->n_ops[b]; i++) {
			free(t->ops[b][i].key);
			free(t->ops[b][i].arg);
		}
		free(t->ops[b]);
	}
	free(t);
}

static void
txn_fail(iotca_etcd_txn *t, iotca_err err)
{
	if (t->err == IOTCA_OK)
		t->err = err;
}

/* A NUL-terminated copy of n bytes (src may be NULL when n is 0). */
static char *
txn_dup(const char *src, size_t n)
{
	char *p = malloc(n + 1);

	if (p == NULL)
		return NULL;
	if (n > 0)
		memcpy(p, src, n);
	p[n] = '\0';
	return p;
}

/* Grows an array of elem-sized items to hold one more; 0 or -1. */
static int
txn_grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	size_t ncap;
	void *p;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 8;
	if ((p = realloc(*arr, ncap * elem)) == NULL)
		return -1;
	*arr = p;
	*cap = ncap;
	return 0;
}

static size_t
b64_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

/* Checks a builder call's key; records and returns -1 when unusable. */
static int
txn_check_key(iotca_etcd_txn *t, const char *key, size_t key_len)
{
	if (t == NULL)
		return -1;
	if (t->err != IOTCA_OK)
		return -1;
	if (key == NULL || key_len == 0) {
		txn_fail(t, IOTCA_EINVAL);
		return -1;
	}
	return 0;
}

static etcd_txn_cmp *
txn_cmp_add(iotca_etcd_txn *t, const char *key, size_t key_len,
            iotca_etcd_cmp_target target, iotca_etcd_cmp_op op)
{
	etcd_txn_cmp *c;

	if (txn_check_key(t, key, key_len) != 0)
		return NULL;
	if ((unsigned)target > IOTCA_ETCD_CMP_LEASE ||
	    (unsigned)op > IOTCA_ETCD_LESS) {
		txn_fail(t, IOTCA_EINVAL);
		return NULL;
	}
	if (txn_grow((void **)&t->cmps, &t->cap_cmps, t->n_cmps, sizeof(*c)) !=
	    0) {
		txn_fail(t, IOTCA_ENOMEM);
		return NULL;
	}
	c = &t->cmps[t->n_cmps];
	memset(c, 0, sizeof(*c));
	c->target = target;
	c->op = op;
	if ((c->key = txn_dup(key, key_len)) == NULL) {
		txn_fail(t, IOTCA_ENOMEM);
		return NULL;
	}
	c->key_len = key_len;
	t->n_cmps++;
	t->bytes += TXN_ITEM_OVERHEAD + b64_len(key_len);
	return c;
}

void
iotca_etcd_txn_cmp_num(iotca_etcd_txn *t, const char *key, size_t key_len,
                       iotca_etcd_cmp_target target, iotca_etcd_cmp_op op,
                       int64_t n)
{
	etcd_txn_cmp *c;

	if (target == IOTCA_ETCD_CMP_VALUE) {
		if (t != NULL)
			txn_fail(t, IOTCA_EINVAL);
		return;
	}
	if ((c = txn_cmp_add(t, key, key_len, target, op)) != NULL)
		c->n = n;
}

void
iotca_etcd_txn_cmp_value(iotca_etcd_txn *t, const char *key, size_t key_len,
                         iotca_etcd_cmp_op op, const char *value,
                         size_t value_len)
{
	etcd_txn_cmp *c =
	    txn_cmp_add(t, key, key_len, IOTCA_ETCD_CMP_VALUE, op);

	if (c == NULL)
		return;
	if ((c->value = txn_dup(value, value_len)) == NULL) {
		txn_fail(t, IOTCA_ENOMEM);
		return;
	}
	c->value_len = value_len;
	t->bytes += b64_len(value_len);
}

/* Appends an op to branch b, copying key and arg. */
static etcd_txn_op *
txn_op_add(iotca_etcd_txn *t, iotca_etcd_branch b, iotca_etcd_op_type type,
           const char *key, size_t key_len, const char *arg, size_t arg_len)
{
	etcd_txn_op *op;
	int want_arg;

	if (txn_check_key(t, key, key_len) != 0)
		return NULL;
	if ((unsigned)b > IOTCA_ETCD_FAILURE) {
		txn_fail(t, IOTCA_EINVAL);
		return NULL;
	}
	if (txn_grow((void **)&t->ops[b], &t->cap_ops[b], t->n_ops[b],
	             sizeof(*op)) != 0) {
		txn_fail(t, IOTCA_ENOMEM);
		return NULL;
	}
	/* a put always has a value; an empty range_end means one key */
	want_arg = arg != NULL && (type == IOTCA_ETCD_OP_PUT || arg_len > 0);
	op = &t->ops[b][t->n_ops[b]];
	memset(op, 0, sizeof(*op));
	op->type = type;
	op->key = txn_dup(key, key_len);
	if (want_arg)
		op->arg = txn_dup(arg, arg_len);
	if (op->key == NULL || (want_arg && op->arg == NULL)) {
		free(op->key);
		free(op->arg);
		txn_fail(t, IOTCA_ENOMEM);
		return NULL;
	}
	op->key_len = key_len;
	op->arg_len = op->arg ? arg_len : 0;
	t->n_ops[b]++;
	t->bytes += TXN_ITEM_OVERHEAD + b64_len(key_len) + b64_len(arg_len);
	return op;
}

void
iotca_etcd_txn_put(iotca_etcd_txn *t, iotca_etcd_branch b, const char *key,
                   size_t key_len, const char *value, size_t value_len,
                   int64_t lease)
{
	etcd_txn_op *op = txn_op_add(t, b, IOTCA_ETCD_OP_PUT, key, key_len,
	                             value ? value : "", value_len);

	if (op == NULL)
		return;
	op->lease = lease;
	t->writes = 1;
}

void
iotca_etcd_txn_delete(iotca_etcd_txn *t, iotca_etcd_branch b, const char *key,
                      size_t key_len, const char *range_end,
                      size_t range_end_len)
{
	if (txn_op_add(t, b, IOTCA_ETCD_OP_DELETE, key, key_len, range_end,
	               range_end_len) != NULL)
		t->writes = 1;
}

void
iotca_etcd_txn_range(iotca_etcd_txn *t, iotca_etcd_branch b, const char *key,
                     size_t key_len, const char *range_end,
                     size_t range_end_len)
{
	txn_op_add(t, b, IOTCA_ETCD_OP_RANGE, key, key_len, range_end,
	           range_end_len);
}

/* etcd checks --max-txn-ops against the compares and each branch. */
size_t
iotca_etcd_txn_ops(const iotca_etcd_txn *t)
{
	size_t n;

	if (t == NULL)
		return 0;
	n = t->n_ops[0] > t->n_ops[1] ? t->n_ops[0] : t->n_ops[1];
	return n > t->n_cmps ? n : t->n_cmps;
}

size_t
iotca_etcd_txn_bytes(const iotca_etcd_txn *t)
{
	return t ? t->bytes : 0;
}

/* ---- transactions: the request JSON ----
 *
 * Written straight into a buffer, not built as jansson objects and dumped:
 * a 10,000-row upload is a 2.5 MB request, and the objects cost most of
 * its building time. Every string written is base64 or one of the fixed
 * names below, so nothing needs escaping. */

/* Appends "name":"<base64 of p>". */
static iotca_err
txn_w_b64(iotca_buf *w, const char *name, const void *p, size_t n)
{
	char small[1025], *s = small;
	size_t len;
	iotca_err rc;

	if (n > (size_t)INT_MAX / 4 * 3 - 3)
		return IOTCA_ETOOBIG;
	len = (n + 2) / 3 * 4;
	if (len >= sizeof(small) && (s = malloc(len + 1)) == NULL)
		return IOTCA_ENOMEM;
	if (n > 0)
		EVP_EncodeBlock((unsigned char *)s, p, (int)n);
	if ((rc = iotca_buf_printf(w, "\"%s\":\"", name)) == IOTCA_OK &&
	    (rc = iotca_buf_append(w, s, len)) == IOTCA_OK)
		rc = iotca_buf_append(w, "\"", 1);
	if (s != small)
		free(s);
	return rc;
}

static iotca_err
txn_w_cmp(iotca_buf *w, const etcd_txn_cmp *c)
{
	iotca_err rc;

	if ((rc = iotca_buf_append(w, "{", 1)) != IOTCA_OK ||
	    (rc = txn_w_b64(w, "key", c->key, c->key_len)) != IOTCA_OK ||
	    (rc = iotca_buf_printf(w, ",\"target\":\"%s\",\"result\":\"%s\",",
	                           cmp_target_name[c->target],
	                           cmp_op_name[c->op])) != IOTCA_OK)
		return rc;
	if (c->target == IOTCA_ETCD_CMP_VALUE)
		rc = txn_w_b64(w, "value", c->value, c->value_len);
	else
		rc = iotca_buf_printf(w, "\"%s\":%lld",
		                      cmp_target_field[c->target],
		                      (long long)c->n);
	return rc != IOTCA_OK ? rc : iotca_buf_append(w, "}", 1);
}

static iotca_err
txn_w_op(iotca_buf *w, const etcd_txn_op *op)
{
	static const char *const names[] = {
	    [IOTCA_ETCD_OP_PUT] = "request_put",
	    [IOTCA_ETCD_OP_DELETE] = "request_delete_range",
	    [IOTCA_ETCD_OP_RANGE] = "request_range",
	};
	iotca_err rc;

	if ((rc = iotca_buf_printf(w, "{\"%s\":{", names[op->type])) !=
	        IOTCA_OK ||
	    (rc = txn_w_b64(w, "key", op->key, op->key_len)) != IOTCA_OK)
		return rc;
	if (op->type == IOTCA_ETCD_OP_PUT) {
		if ((rc = iotca_buf_append(w, ",", 1)) != IOTCA_OK ||
		    (rc = txn_w_b64(w, "value", op->arg, op->arg_len)) !=
		        IOTCA_OK)
			return rc;
		if (op->lease != 0 &&
		    (rc = iotca_buf_printf(w, ",\"lease\":%lld",
		                           (long long)op->lease)) != IOTCA_OK)
			return rc;
	} else if (op->arg != NULL && op->arg_len > 0) {
		if ((rc = iotca_buf_append(w, ",", 1)) != IOTCA_OK ||
		    (rc = txn_w_b64(w, "range_end", op->arg, op->arg_len)) !=
		        IOTCA_OK)
			return rc;
	}
	return iotca_buf_append(w, "}}", 2);
}

/* Appends ,"name":[ops...] (nothing for no ops). */
static iotca_err
txn_w_branch(iotca_buf *w, const char *name, const etcd_txn_op *ops, size_t n,
             int *first)
{
	size_t i;
	iotca_err rc;

	if (n == 0)
		return IOTCA_OK;
	if ((rc = iotca_buf_printf(w, "%s\"%s\":[", *first ? "" : ",", name)) !=
	    IOTCA_OK)
		return rc;
	*first = 0;
	for (i = 0; i < n && rc == IOTCA_OK; i++)
		if ((rc = i > 0 ? iotca_buf_append(w, ",", 1) : IOTCA_OK) ==
		    IOTCA_OK)
			rc = txn_w_op(w, &ops[i]);
	return rc != IOTCA_OK ? rc : iotca_buf_append(w, "]", 1);
}

iotca_err
etcd_json_txn_req(const iotca_etcd_txn *t, char **out)
{
	iotca_buf w;
	size_t i;
	int first = 1;
	iotca_err rc;

	iotca_buf_init(&w, (size_t)INT_MAX);
	rc = iotca_buf_append(&w, "{", 1);
	if (rc == IOTCA_OK && t->n_cmps > 0) {
		rc = iotca_buf_append_str(&w, "\"compare\":[");
		for (i = 0; i < t->n_cmps && rc == IOTCA_OK; i++)
			if ((rc = i > 0 ? iotca_buf_append(&w, ",", 1)
			                : IOTCA_OK) == IOTCA_OK)
				rc = txn_w_cmp(&w, &t->cmps[i]);
		if (rc == IOTCA_OK)
			rc = iotca_buf_append(&w, "]", 1);
		first = 0;
	}
	if (rc == IOTCA_OK)
		rc = txn_w_branch(&w, "success", t->ops[IOTCA_ETCD_SUCCESS],
		                  t->n_ops[IOTCA_ETCD_SUCCESS], &first);
	if (rc == IOTCA_OK)
		rc = txn_w_branch(&w, "failure", t->ops[IOTCA_ETCD_FAILURE],
		                  t->n_ops[IOTCA_ETCD_FAILURE], &first);
	if (rc == IOTCA_OK)
		rc = iotca_buf_append(&w, "}", 1);
	if (rc != IOTCA_OK) {
		iotca_buf_free(&w);
		return rc;
	}
	*out = iotca_buf_take(&w, NULL);
	return *out != NULL ? IOTCA_OK : IOTCA_ENOMEM;
}

/* ---- results: freeing ---- */

void
iotca_etcd_kv_free(iotca_etcd_kv *kv)
{
	if (kv == NULL)
		return;
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

void
iotca_etcd_range_result_free(iotca_etcd_range_result *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->n; i++)
		iotca_etcd_kv_free(&r->kvs[i]);
	free(r->kvs);
	memset(r, 0, sizeof(*r));
}

void
iotca_etcd_txn_result_free(iotca_etcd_txn_result *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->n; i++)
		iotca_etcd_range_result_free(&r->results[i].range);
	free(r->results);
	memset(r, 0, sizeof(*r));
}

size_t
iotca_etcd_prefix_end(const char *prefix, size_t prefix_len, char *out)
{
	size_t i = prefix_len;

	while (i > 0 && (unsigned char)prefix[i - 1] == 0xff)
		i--;
	if (i == 0) {
		/* All 0xff: no key is greater, so read to the end. An empty
		 * prefix has no room in out and gets 0 (callers that mean
		 * "every key" use key "\0" with range_end "\0"). */
		if (prefix_len == 0)
			return 0;
		out[0] = '\0';
		return 1;
	}
	memcpy(out, prefix, i);
	out[i - 1] = (char)((unsigned char)prefix[i - 1] + 1);
	return i;
}

/* ---- parsing: field helpers ---- */

/* Loads a reply that must be one JSON object. */
static iotca_err
reply_load(const char *data, size_t len, json_t **out, iotca_errbuf *eb)
{
	json_error_t jerr;
	json_t *root;

	if (data == NULL)
		return iotca_errbuf_set(eb, IOTCA_EPROTO, "empty reply");
	if ((root = json_loadb(data, len, 0, &jerr)) == NULL)
		return iotca_errbuf_set(eb, IOTCA_EPROTO,
		                        "reply is not JSON (%s at byte %d)",
		                        jerr.text, jerr.position);
	if (!json_is_object(root)) {
		json_decref(root);
		return iotca_errbuf_set(eb, IOTCA_EPROTO,
		                        "reply is not a JSON object");
	}
	*out = root;
	return IOTCA_OK;
}

/* Decimal int64 with an optional '-', nothing else. 0 or -1. */
static int
int64_from_str(const char *s, size_t n, int64_t *out)
{
	char *end;
	long long v;
	size_t d = (n > 0 && s[0] == '-') ? 1 : 0;

	if (n == d || n > 20 || s[d] < '0' || s[d] > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end != s + n)
		return -1;
	*out = v;
	return 0;
}

/* An int64 field as a string or a number; missing means 0. */
static iotca_err
get_int64(json_t *o, const char *name, int64_t *out, iotca_errbuf *eb)
{
	json_t *v = json_object_get(o, name);

	*out = 0;
	if (v == NULL || json_is_null(v))
		return IOTCA_OK;
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return IOTCA_OK;
	}
	if (json_is_string(v) &&
	    int64_from_str(json_string_value(v), json_string_length(v), out) ==
	        0)
		return IOTCA_OK;
	return iotca_errbuf_set(eb, IOTCA_EPROTO,
	                        "field \"%s\" is not an integer", name);
}

/* A boolean field; missing means false. */
static iotca_err
get_bool(json_t *o, const char *name, int *out, iotca_errbuf *eb)
{
	json_t *v = json_object_get(o, name);

	*out = 0;
	if (v == NULL || json_is_null(v))
		return IOTCA_OK;
	if (!json_is_boolean(v))
		return iotca_errbuf_set(eb, IOTCA_EPROTO,
		                        "field \"%s\" is not a boolean", name);
	*out = json_is_true(v);
	return IOTCA_OK;
}

/* A field that must be an object (or array, by want) when present. */
static iotca_err
get_typed(json_t *o, const char *name, json_type want, json_t **out,
          iotca_errbuf *eb)
{
	json_t *v = json_object_get(o, name);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return IOTCA_OK;
	if (json_typeof(v) != want)
		return iotca_errbuf_set(
		    eb, IOTCA_EPROTO, "field \"%s\" is not an %s", name,
		    want == JSON_OBJECT ? "object" : "array");
	*out = v;
	return IOTCA_OK;
}

/* A base64 bytes field, decoded and NUL-terminated; missing means "". */
static iotca_err
get_bytes(json_t *o, const char *name, char **out, size_t *len,
          iotca_errbuf *eb)
{
	json_t *v = json_object_get(o, name);
	iotca_err rc;

	if (v == NULL || json_is_null(v))
		return etcd_b64_decode("", 0, out, len);
	if (!json_is_string(v))
		return iotca_errbuf_set(eb, IOTCA_EPROTO,
		                        "field \"%s\" is not a string", name);
	rc = etcd_b64_decode(json_string_value(v), json_string_length(v), out,
	                     len);
	if (rc == IOTCA_EPROTO)
		return iotca_errbuf_set(eb, rc, "field \"%s\" is not base64",
		                        name);
	if (rc != IOTCA_OK)
		return iotca_errbuf_set(eb, rc, "no memory for field \"%s\"",
		                        name);
	return IOTCA_OK;
}

/* header.revision of a reply; 0 when there is no header. */
static iotca_err
get_header_revision(json_t *o, int64_t *rev, iotca_errbuf *eb)
{
	json_t *h;
	iotca_err rc;

	*rev = 0;
	if ((rc = get_typed(o, "header", JSON_OBJECT, &h, eb)) != IOTCA_OK)
		return rc;
	return h ? get_int64(h, "revision", rev, eb) : IOTCA_OK;
}

/* ---- parsing: key-values and ranges ---- */

static iotca_err
parse_kv(json_t *o, iotca_etcd_kv *kv, iotca_errbuf *eb)
{
	iotca_err rc = IOTCA_EPROTO;

	memset(kv, 0, sizeof(*kv));
	if (!json_is_object(o)) {
		iotca_errbuf_set(eb, rc, "a key-value is not an object");
		goto out;
	}
	if ((rc = get_bytes(o, "key", &kv->key, &kv->key_len, eb)) ||
	    (rc = get_bytes(o, "value", &kv->value, &kv->value_len, eb)) ||
	    (rc = get_int64(o, "create_revision", &kv->create_revision, eb)) ||
	    (rc = get_int64(o, "mod_revision", &kv->mod_revision, eb)) ||
	    (rc = get_int64(o, "version", &kv->version, eb)) ||
	    (rc = get_int64(o, "lease", &kv->lease, eb)))
		goto out;
	rc = IOTCA_OK;
out:
	if (rc != IOTCA_OK)
		iotca_etcd_kv_free(kv);
	return rc;
}

static iotca_err
parse_kvs(json_t *arr, iotca_etcd_kv **kvs, size_t *n, iotca_errbuf *eb)
{
	size_t i, count = arr ? json_array_size(arr) : 0;
	iotca_etcd_kv *v;
	iotca_err rc;

	*kvs = NULL;
	*n = 0;
	if (count == 0)
		return IOTCA_OK;
	if ((v = calloc(count, sizeof(*v))) == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM,
		                        "no memory for %zu key-values", count);
	for (i = 0; i < count; i++) {
		rc = parse_kv(json_array_get(arr, i), &v[i], eb);
		if (rc != IOTCA_OK) {
			while (i > 0)
				iotca_etcd_kv_free(&v[--i]);
			free(v);
			return rc;
		}
	}
	*kvs = v;
	*n = count;
	return IOTCA_OK;
}

/* A RangeResponse object: header, kvs, more, count. */
static iotca_err
parse_range_obj(json_t *o, iotca_etcd_range_result *out, iotca_errbuf *eb)
{
	iotca_etcd_range_result r;
	json_t *kvs;
	iotca_err rc;

	memset(&r, 0, sizeof(r));
	if ((rc = get_header_revision(o, &r.revision, eb)) ||
	    (rc = get_bool(o, "more", &r.more, eb)) ||
	    (rc = get_int64(o, "count", &r.count, eb)) ||
	    (rc = get_typed(o, "kvs", JSON_ARRAY, &kvs, eb)) ||
	    (rc = parse_kvs(kvs, &r.kvs, &r.n, eb)))
		return rc;
	*out = r;
	return IOTCA_OK;
}

iotca_err
etcd_parse_range(const char *data, size_t len, iotca_etcd_range_result *out,
                 iotca_errbuf *eb)
{
	json_t *root;
	iotca_err rc;

	if ((rc = reply_load(data, len, &root, eb)) != IOTCA_OK)
		return rc;
	rc = parse_range_obj(root, out, eb);
	json_decref(root);
	return rc;
}

iotca_err
etcd_parse_put(const char *data, size_t len, int64_t *revision,
               iotca_errbuf *eb)
{
	json_t *root;
	int64_t rev;
	iotca_err rc;

	if ((rc = reply_load(data, len, &root, eb)) != IOTCA_OK)
		return rc;
	rc = get_header_revision(root, &rev, eb);
	json_decref(root);
	if (rc == IOTCA_OK && revision != NULL)
		*revision = rev;
	return rc;
}

iotca_err
etcd_parse_delete(const char *data, size_t len, int64_t *deleted,
                  iotca_errbuf *eb)
{
	json_t *root;
	int64_t n;
	iotca_err rc;

	if ((rc = reply_load(data, len, &root, eb)) != IOTCA_OK)
		return rc;
	rc = get_int64(root, "deleted", &n, eb);
	json_decref(root);
	if (rc == IOTCA_OK && deleted != NULL)
		*deleted = n;
	return rc;
}

/* ---- parsing: transactions ---- */

/* One element of "responses": exactly one response_* member. */
static iotca_err
parse_txn_response(json_t *o, iotca_etcd_op_result *r, iotca_errbuf *eb)
{
	json_t *v;

	memset(r, 0, sizeof(*r));
	if (!json_is_object(o))
		return iotca_errbuf_set(eb, IOTCA_EPROTO,
		                        "a txn response is not an object");
	if ((v = json_object_get(o, "response_range")) != NULL) {
		r->type = IOTCA_ETCD_OP_RANGE;
		if (!json_is_object(v))
			return iotca_errbuf_set(
			    eb, IOTCA_EPROTO,
			    "response_range is not an object");
		return parse_range_obj(v, &r->range, eb);
	}
	if ((v = json_object_get(o, "response_delete_range")) != NULL) {
		r->type = IOTCA_ETCD_OP_DELETE;
		if (!json_is_object(v))
			return iotca_errbuf_set(
			    eb, IOTCA_EPROTO,
			    "response_delete_range is not an object");
		return get_int64(v, "deleted", &r->deleted, eb);
	}
	if ((v = json_object_get(o, "response_put")) != NULL) {
		r->type = IOTCA_ETCD_OP_PUT;
		if (json_is_object(v))
			return IOTCA_OK;
	}
	return iotca_errbuf_set(eb, IOTCA_EPROTO,
	                        "a txn response has no known response_* "
	                        "member");
}

static iotca_err
parse_txn_responses(json_t *arr, iotca_etcd_txn_result *out, iotca_errbuf *eb)
{
	size_t i, count = arr ? json_array_size(arr) : 0;
	iotca_err rc;

	if (count == 0)
		return IOTCA_OK;
	out->results = calloc(count, sizeof(*out->results));
	if (out->results == NULL)
		return iotca_errbuf_set(
		    eb, IOTCA_ENOMEM, "no memory for %zu txn responses", count);
	for (i = 0; i < count; i++) {
		rc = parse_txn_response(json_array_get(arr, i),
		                        &out->results[i], eb);
		out->n = i + 1; /* so that _free releases a partial range */
		if (rc != IOTCA_OK)
			return rc;
	}
	return IOTCA_OK;
}

iotca_err
etcd_parse_txn(const char *data, size_t len, iotca_etcd_txn_result *out,
               iotca_errbuf *eb)
{
	iotca_etcd_txn_result r;
	json_t *root, *arr;
	iotca_err rc;

	memset(&r, 0, sizeof(r));
	if ((rc = reply_load(data, len, &root, eb)) != IOTCA_OK)
		return rc;
	if ((rc = get_bool(root, "succeeded", &r.succeeded, eb)) ||
	    (rc = get_header_revision(root, &r.revision, eb)) ||
	    (rc = get_typed(root, "responses", JSON_ARRAY, &arr, eb)) ||
	    (rc = parse_txn_responses(arr, &r, eb)))
		goto out;
	*out = r;
out:
	if (rc != IOTCA_OK)
		iotca_etcd_txn_result_free(&r);
	json_decref(root);
	return rc;
}

/* ---- parsing: errors ---- */

static void
copy_msg(char *dst, size_t n, json_t *s)
{
	const char *v = json_is_string(s) ? json_string_value(s) : "";

	if (n == 0)
		return;
	snprintf(dst, n, "%s", v);
}

/* The error of a unary call ({"error": "...", "code": N}) or of a stream
 * ({"error": {"grpc_code": N, "message": "..."}}) held in root. */
static int
error_from_json(json_t *root, int *code, char *msg, size_t msg_size)
{
	json_t *err = json_object_get(root, "error"), *c;

	if (json_is_string(err)) {
		c = json_object_get(root, "code");
		if (!json_is_integer(c))
			return 0;
		*code = (int)json_integer_value(c);
		copy_msg(msg, msg_size, err);
		return 1;
	}
	if (json_is_object(err)) {
		c = json_object_get(err, "grpc_code");
		if (!json_is_integer(c))
			return 0;
		*code = (int)json_integer_value(c);
		copy_msg(msg, msg_size, json_object_get(err, "message"));
		return 1;
	}
	return 0;
}

int
etcd_parse_error(const char *data, size_t len, int *code, char *msg,
                 size_t msg_size)
{
	json_t *root;
	int is_err;

	if (data == NULL || (root = json_loadb(data, len, 0, NULL)) == NULL)
		return 0;
	is_err =
	    json_is_object(root) && error_from_json(root, code, msg, msg_size);
	json_decref(root);
	return is_err;
}

iotca_err
etcd_error_map(int code, const char *msg)
{
	if ((code == IOTCA_GRPC_INVALID_ARGUMENT ||
	     code == IOTCA_GRPC_RESOURCE_EXHAUSTED) &&
	    (strstr(msg, "too many operations") != NULL ||
	     strstr(msg, "too large") != NULL ||
	     strstr(msg, "larger than max") != NULL))
		return IOTCA_ETOOBIG;
	if (code == IOTCA_GRPC_OK || code == IOTCA_GRPC_UNKNOWN ||
	    code == IOTCA_GRPC_INTERNAL || code == IOTCA_GRPC_DATA_LOSS)
		return code == IOTCA_GRPC_INTERNAL ? IOTCA_EINTERNAL
		                                   : IOTCA_EPROTO;
	return iotca_err_from_grpc_status(code);
}

/* When root is a gateway error object, records it in eb; else IOTCA_OK. */
static iotca_err
reply_error(json_t *root, iotca_errbuf *eb)
{
	char msg[256];
	int code;

	if (!error_from_json(root, &code, msg, sizeof(msg)))
		return IOTCA_OK;
	return iotca_errbuf_set(eb, etcd_error_map(code, msg),
	                        "etcd error %d: %s", code, msg);
}

/* ---- parsing: leases, health ---- */

iotca_err
etcd_parse_lease_grant(const char *data, size_t len, int64_t *id, int64_t *ttl,
                       iotca_errbuf *eb)
{
	json_t *root, *err;
	int64_t i, t;
	iotca_err rc;

	if ((rc = reply_load(data, len, &root, eb)) != IOTCA_OK)
		return rc;
	if ((rc = reply_error(root, eb)) != IOTCA_OK)
		goto out;
	err = json_object_get(root, "error");
	if (json_is_string(err) && json_string_length(err) > 0) {
		rc = iotca_errbuf_set(eb, IOTCA_EINTERNAL,
		                      "lease grant refused: %s",
		                      json_string_value(err));
		goto out;
	}
	if ((rc = get_int64(root, "ID", &i, eb)) ||
	    (rc = get_int64(root, "TTL", &t, eb)))
		goto out;
	if (i == 0 || t <= 0) {
		rc = iotca_errbuf_set(eb, IOTCA_EPROTO,
		                      "lease grant reply has no ID or TTL");
		goto out;
	}
	*id = i;
	if (ttl != NULL)
		*ttl = t;
out:
	json_decref(root);
	return rc;
}

iotca_err
etcd_parse_lease_keepalive(const char *data, size_t len, int64_t *ttl,
                           iotca_errbuf *eb)
{
	json_t *root, *res;
	int64_t t, id;
	iotca_err rc;

	if ((rc = reply_load(data, len, &root, eb)) != IOTCA_OK)
		return rc;
	if ((rc = reply_error(root, eb)) ||
	    (rc = get_typed(root, "result", JSON_OBJECT, &res, eb)))
		goto out;
	if (res == NULL) {
		rc = iotca_errbuf_set(eb, IOTCA_EPROTO,
		                      "keepalive reply has no \"result\"");
		goto out;
	}
	if ((rc = get_int64(res, "ID", &id, eb)) ||
	    (rc = get_int64(res, "TTL", &t, eb)))
		goto out;
	if (t <= 0) {
		rc = iotca_errbuf_set(eb, IOTCA_ENOENT,
		                      "lease %lld has expired or was revoked",
		                      (long long)id);
		goto out;
	}
	if (ttl != NULL)
		*ttl = t;
out:
	json_decref(root);
	return rc;
}

iotca_err
etcd_parse_health(const char *data, size_t len, iotca_errbuf *eb)
{
	json_t *root, *h;
	iotca_err rc;

	if ((rc = reply_load(data, len, &root, eb)) != IOTCA_OK)
		return rc;
	h = json_object_get(root, "health");
	if (!json_is_string(h))
		rc = iotca_errbuf_set(eb, IOTCA_EPROTO,
		                      "health reply has no \"health\" string");
	else if (strcmp(json_string_value(h), "true") != 0)
		rc = iotca_errbuf_set(eb, IOTCA_EUNAVAIL,
		                      "etcd reports health=%s",
		                      json_string_value(h));
	json_decref(root);
	return rc;
}

/* ---- parsing: watch streams ---- */

static void
event_free(iotca_etcd_event *ev)
{
	iotca_etcd_kv_free(&ev->kv);
	iotca_etcd_kv_free(&ev->prev_kv);
}

void
etcd_watch_msg_free(etcd_watch_msg *m)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->n_events; i++)
		event_free(&m->events[i]);
	free(m->events);
	m->events = NULL;
	m->n_events = 0;
}

static iotca_err
parse_event(json_t *o, iotca_etcd_event *ev, iotca_errbuf *eb)
{
	json_t *type, *kv, *prev;
	iotca_err rc;

	memset(ev, 0, sizeof(*ev));
	if (!json_is_object(o))
		return iotca_errbuf_set(eb, IOTCA_EPROTO,
		                        "a watch event is not an object");
	type = json_object_get(o, "type");
	if (type == NULL || (json_is_string(type) &&
	                     strcmp(json_string_value(type), "PUT") == 0))
		ev->type = IOTCA_ETCD_EVENT_PUT;
	else if (json_is_string(type) &&
	         strcmp(json_string_value(type), "DELETE") == 0)
		ev->type = IOTCA_ETCD_EVENT_DELETE;
	else
		return iotca_errbuf_set(eb, IOTCA_EPROTO,
		                        "a watch event has an unknown type");
	if ((rc = get_typed(o, "kv", JSON_OBJECT, &kv, eb)) ||
	    (rc = get_typed(o, "prev_kv", JSON_OBJECT, &prev, eb)))
		return rc;
	if (kv == NULL)
		return iotca_errbuf_set(eb, IOTCA_EPROTO,
		                        "a watch event has no kv");
	if ((rc = parse_kv(kv, &ev->kv, eb)) != IOTCA_OK)
		return rc;
	if (prev != NULL && (rc = parse_kv(prev, &ev->prev_kv, eb))) {
		event_free(ev);
		return rc;
	}
	ev->has_prev = prev != NULL;
	return IOTCA_OK;
}

static iotca_err
parse_events(json_t *arr, etcd_watch_msg *m, iotca_errbuf *eb)
{
	size_t i, count = arr ? json_array_size(arr) : 0;
	iotca_err rc;

	if (count == 0)
		return IOTCA_OK;
	if ((m->events = calloc(count, sizeof(*m->events))) == NULL)
		return iotca_errbuf_set(
		    eb, IOTCA_ENOMEM, "no memory for %zu watch events", count);
	for (i = 0; i < count; i++) {
		rc = parse_event(json_array_get(arr, i), &m->events[i], eb);
		if (rc != IOTCA_OK)
			return rc;
		m->n_events = i + 1;
	}
	return IOTCA_OK;
}

static iotca_err
parse_watch_result(json_t *res, etcd_watch_msg *m, iotca_errbuf *eb)
{
	json_t *arr, *reason;
	iotca_err rc;

	if ((rc = get_header_revision(res, &m->revision, eb)) ||
	    (rc = get_bool(res, "created", &m->created, eb)) ||
	    (rc = get_bool(res, "canceled", &m->canceled, eb)) ||
	    (rc = get_int64(res, "compact_revision", &m->compact_revision,
	                    eb)) ||
	    (rc = get_typed(res, "events", JSON_ARRAY, &arr, eb)))
		return rc;
	reason = json_object_get(res, "cancel_reason");
	copy_msg(m->cancel_reason, sizeof(m->cancel_reason), reason);
	return parse_events(arr, m, eb);
}

iotca_err
etcd_parse_watch(const char *data, size_t len, etcd_watch_msg *out,
                 iotca_errbuf *eb)
{
	json_t *root, *res;
	iotca_err rc;

	memset(out, 0, sizeof(*out));
	if ((rc = reply_load(data, len, &root, eb)) != IOTCA_OK)
		return rc;
	if ((rc = reply_error(root, eb)) ||
	    (rc = get_typed(root, "result", JSON_OBJECT, &res, eb)))
		goto out;
	if (res == NULL) {
		rc = iotca_errbuf_set(eb, IOTCA_EPROTO,
		                      "watch message has no \"result\"");
		goto out;
	}
	rc = parse_watch_result(res, out, eb);
out:
	if (rc != IOTCA_OK)
		etcd_watch_msg_free(out);
	json_decref(root);
	return rc;
}
