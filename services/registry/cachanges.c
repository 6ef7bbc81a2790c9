/*
 * cachanges.c - ListCaChanges: the change feed (feed.h) of the CA records
 * under /iotca/cas/<account_id>/<ca_id>, which hold each CA's status and
 * subject (registry.h).
 *
 * Reported, as the edge needs them: a CA registered ACTIVE (active), its
 * status changed (active or not), deleted (not active, no subject). A
 * record registered INACTIVE, or rewritten with the status it had, is no
 * change for the edge. A record that cannot be read is reported as not
 * active: the edge forgets the CA and asks again.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "registry.h"

#define CA_CHANGES_PREFIX "/iotca/cas/"
#define CA_CHANGES_KEEP   65536
#define CA_CHANGES_BYTES  (32u << 20)
/* One answer: at most this many changes (the contract), and this many
 * bytes of subjects, well under a client's default 4 MiB; more: reset. */
#define CA_CHANGES_ANSWER_MAX   1000
#define CA_CHANGES_ANSWER_BYTES (2u << 20)

/* One change, in one malloc'd block: the strings follow the struct. */
typedef struct ca_change {
	int active;
	char *ca_id, *account_id;
	uint8_t *subject_der; /* empty when deleted or unreadable */
	size_t subject_len;
	char buf[];
} ca_change;

/* A CA record's status: 1 ACTIVE, 0 not, -1 unreadable. *rec (may be
 * NULL) gets the parsed record, to json_decref. */
static int
ca_change_status(const char *val, size_t len, json_t **rec)
{
	json_t *j = json_loadb(val, len, 0, NULL);
	int st = -1;

	if (json_is_object(j))
		st = strcmp(iotca_svc_json_str(j, "status"), "ACTIVE") == 0;
	if (rec != NULL && st >= 0)
		*rec = j;
	else
		json_decref(j);
	return st;
}

/* Decodes base64 s into out (room for n bytes); its length, or 0 when s
 * is not base64. */
static size_t
ca_change_unb64(const char *s, size_t n, uint8_t *out)
{
	size_t pad = 0;
	int len;

	if (n == 0 || n % 4 != 0 || n > INT_MAX ||
	    (len = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n)) < 0)
		return 0;
	while (pad < 2 && s[n - 1 - pad] == '=')
		pad++;
	return (size_t)len - pad;
}

/* Builds the entry of a change of /iotca/cas/<acc>/<id>. */
static ca_change *
ca_change_new(const char *acc, size_t acc_len, const char *id, size_t id_len,
              int active, const char *subject64, size_t *size)
{
	size_t sub_len = strlen(subject64);
	ca_change *c;

	*size = sizeof(*c) + acc_len + id_len + sub_len + 2;
	if ((c = malloc(*size)) == NULL)
		return NULL;
	c->active = active;
	c->account_id = c->buf;
	memcpy(c->account_id, acc, acc_len);
	c->account_id[acc_len] = '\0';
	c->ca_id = c->account_id + acc_len + 1;
	memcpy(c->ca_id, id, id_len);
	c->ca_id[id_len] = '\0';
	c->subject_der = (uint8_t *)c->ca_id + id_len + 1;
	c->subject_len = ca_change_unb64(subject64, sub_len, c->subject_der);
	return c;
}

/* feed_parse_fn: name is "<account_id>/<ca_id>". */
static iotca_err
ca_change_parse(const iotca_etcd_event *ev, const char *name, size_t name_len,
                void **data, size_t *size, void *arg)
{
	const char *slash = memchr(name, '/', name_len), *subject = "";
	size_t acc_len, id_len;
	json_t *rec = NULL;
	int active = 0, prev;

	(void)arg;
	if (slash == NULL)
		return IOTCA_OK; /* not a CA record */
	acc_len = (size_t)(slash - name);
	id_len = name_len - acc_len - 1;
	if (acc_len == 0 || id_len == 0 || memchr(slash + 1, '/', id_len))
		return IOTCA_OK;
	if (ev->type == IOTCA_ETCD_EVENT_PUT) {
		active =
		    ca_change_status(ev->kv.value, ev->kv.value_len, &rec) == 1;
		prev = ev->has_prev
		           ? ca_change_status(ev->prev_kv.value,
		                              ev->prev_kv.value_len, NULL)
		           : -1;
		if ((ev->kv.version == 1 && !active) ||
		    (rec != NULL && prev == active)) {
			json_decref(rec); /* registered INACTIVE, or the same */
			return IOTCA_OK;
		}
		if (rec != NULL)
			subject = iotca_svc_json_str(rec, "subject_der");
	}
	*data = ca_change_new(name, acc_len, slash + 1, id_len, active, subject,
	                      size);
	json_decref(rec);
	return *data != NULL ? IOTCA_OK : IOTCA_ENOMEM;
}

iotca_err
ca_changes_start(iotca_etcd *etcd, feed **out, iotca_errbuf *eb)
{
	feed_opts o = {
	    .name = "ca-changes",
	    .prefix = CA_CHANGES_PREFIX,
	    .max_entries = CA_CHANGES_KEEP,
	    .max_bytes = CA_CHANGES_BYTES,
	    .parse = ca_change_parse,
	};

	return feed_start(etcd, &o, out, eb);
}

typedef struct ca_changes_out {
	iotca_rpc_call *call;
	Iotca__V1__ListCaChangesResponse *resp;
} ca_changes_out;

/* feed_emit_fn: copies a change into the response (under the feed's
 * lock: arena allocations only). */
static iotca_err
ca_change_emit(const void *data, int64_t revision, void *arg)
{
	const ca_change *c = data;
	ca_changes_out *o = arg;
	iotca_arena *a = iotca_rpc_call_arena(o->call);
	Iotca__V1__CaChange *m;

	if (o->resp->changes == NULL &&
	    (o->resp->changes = iotca_arena_alloc(
	         a, CA_CHANGES_ANSWER_MAX * sizeof(*o->resp->changes))) == NULL)
		return IOTCA_ENOMEM;
	if ((m = iotca_arena_zalloc(a, sizeof(*m))) == NULL)
		return IOTCA_ENOMEM;
	iotca__v1__ca_change__init(m);
	m->ca_id = iotca_arena_strdup(a, c->ca_id);
	m->account_id = iotca_arena_strdup(a, c->account_id);
	m->active = c->active;
	m->revision = revision;
	if (c->subject_len > 0) {
		if ((m->subject_der.data =
		         iotca_arena_alloc(a, c->subject_len)) == NULL)
			return IOTCA_ENOMEM;
		memcpy(m->subject_der.data, c->subject_der, c->subject_len);
		m->subject_der.len = c->subject_len;
	}
	if (m->ca_id == NULL || m->account_id == NULL)
		return IOTCA_ENOMEM;
	o->resp->changes[o->resp->n_changes++] = m;
	return IOTCA_OK;
}

iotca_err
reg_list_ca_changes(iotca_rpc_call *call, const ProtobufCMessage *req,
                    ProtobufCMessage *resp, void *arg)
{
	const Iotca__V1__ListCaChangesRequest *in = (const void *)req;
	ca_changes_out o = {call, (void *)resp};
	registry *r = arg;
	iotca_principal who;
	feed_answer ans;
	iotca_err rc;

	/* Inline: the internal check and the feed take no I/O. */
	if ((rc = iotca_auth_call(r->auth, call, IOTCA_PRINCIPAL_INTERNAL,
	                          &who)) != IOTCA_OK ||
	    (rc = feed_rpc_query(atomic_load(&r->ca_changes), "ca-changes",
	                         call, in->after_revision,
	                         CA_CHANGES_ANSWER_MAX, CA_CHANGES_ANSWER_BYTES,
	                         ca_change_emit, &o, &ans)) != IOTCA_OK)
		return rc;
	o.resp->revision = ans.revision;
	o.resp->reset = ans.reset;
	return IOTCA_OK;
}
