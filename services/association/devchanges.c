/*
 * devchanges.c - ListDeviceChanges: the change feed (feed.h, compiled from
 * services/registry/) of the SN bindings under /iotca/sn/<account_id>/<sn>
 * (association.h), so the edge drops sessions and cached answers within
 * seconds of a change.
 *
 * Every PUT is a change, with the device and status of the new value
 * (created by an upload, status changed, moved to another CA or device);
 * every DELETE is one with status UNSPECIFIED and the device of the value
 * it deleted (the watch asks etcd for it). A value that cannot be read is
 * reported with empty fields and status UNSPECIFIED: the edge treats the
 * binding as gone and asks again.
 *
 * The feed shares the device index's watch of /iotca/sn/ (devindex.c):
 * one stream of every upload's events, not two.
 */
#include <stdlib.h>
#include <string.h>

#include "association.h"

#define DEV_CHANGES_KEEP  65536 /* six 10,000-row uploads and more */
#define DEV_CHANGES_BYTES (32u << 20)
/* One answer: at most this many changes (the contract), and this many
 * bytes, well under a client's default 4 MiB; more: reset. */
#define DEV_CHANGES_ANSWER_MAX   1000
#define DEV_CHANGES_ANSWER_BYTES (2u << 20)

/* One change, in one malloc'd block: the strings follow the struct. */
typedef struct dev_change {
	Iotca__V1__DeviceStatus status;
	char *account_id, *cert_sn, *ca_id, *pk, *dn;
	char buf[];
} dev_change;

/* What a change says of the binding: from its value, or empty. */
typedef struct dev_change_fields {
	const char *ca, *pk, *dn;
	Iotca__V1__DeviceStatus status;
} dev_change_fields;

/* Reads an SN record into f (strings owned by *j, to json_decref); the
 * record the device index parsed already when it is that one. */
static void
dev_change_read(const iotca_etcd_kv *kv, const dev_parsed *p, json_t **j,
                dev_change_fields *f)
{
	int64_t st;

	f->ca = f->pk = f->dn = "";
	f->status = IOTCA__V1__DEVICE_STATUS__DEVICE_STATUS_UNSPECIFIED;
	if (p != NULL && p->ev != NULL && kv == &p->ev->kv)
		*j = json_incref(p->j);
	else
		*j = json_loadb(kv->value, kv->value_len, 0, NULL);
	if (!json_is_object(*j))
		return;
	f->ca = iotca_svc_json_str(*j, "ca");
	f->pk = iotca_svc_json_str(*j, "pk");
	f->dn = iotca_svc_json_str(*j, "dn");
	st = iotca_svc_json_int(*j, "st");
	if (st == IOTCA__V1__DEVICE_STATUS__DEVICE_STATUS_ENABLED ||
	    st == IOTCA__V1__DEVICE_STATUS__DEVICE_STATUS_DISABLED)
		f->status = (Iotca__V1__DeviceStatus)st;
}

/* Copies s (n bytes) to *p, NUL-terminated, and returns it; *p moves on. */
static char *
dev_change_put(char **p, const char *s, size_t n)
{
	char *d = *p;

	memcpy(d, s, n);
	d[n] = '\0';
	*p += n + 1;
	return d;
}

/* Builds the entry of a change of /iotca/sn/<acc>/<sn>. */
static dev_change *
dev_change_new(const char *acc, size_t acc_len, const char *sn, size_t sn_len,
               const dev_change_fields *f, size_t *size)
{
	size_t ca_len = strlen(f->ca), pk_len = strlen(f->pk),
	       dn_len = strlen(f->dn);
	dev_change *c;
	char *p;

	*size = sizeof(*c) + acc_len + sn_len + ca_len + pk_len + dn_len + 5;
	if ((c = malloc(*size)) == NULL)
		return NULL;
	p = c->buf;
	c->status = f->status;
	c->account_id = dev_change_put(&p, acc, acc_len);
	c->cert_sn = dev_change_put(&p, sn, sn_len);
	c->ca_id = dev_change_put(&p, f->ca, ca_len);
	c->pk = dev_change_put(&p, f->pk, pk_len);
	c->dn = dev_change_put(&p, f->dn, dn_len);
	return c;
}

/* feed_parse_fn: name is "<account_id>/<cert_sn>"; arg the device index's
 * dev_parsed (or NULL). */
static iotca_err
dev_change_parse(const iotca_etcd_event *ev, const char *name, size_t name_len,
                 void **data, size_t *size, void *arg)
{
	const char *slash = memchr(name, '/', name_len);
	dev_change_fields f = {"", "", "", 0};
	size_t acc_len, sn_len;
	json_t *j = NULL;

	if (slash == NULL)
		return IOTCA_OK; /* not an SN binding */
	acc_len = (size_t)(slash - name);
	sn_len = name_len - acc_len - 1;
	if (acc_len == 0 || sn_len == 0 || memchr(slash + 1, '/', sn_len))
		return IOTCA_OK;
	if (ev->type == IOTCA_ETCD_EVENT_PUT) {
		dev_change_read(&ev->kv, arg, &j, &f);
	} else if (ev->has_prev) {
		dev_change_read(&ev->prev_kv, arg, &j, &f);
		f.status = IOTCA__V1__DEVICE_STATUS__DEVICE_STATUS_UNSPECIFIED;
	}
	*data = dev_change_new(name, acc_len, slash + 1, sn_len, &f, size);
	json_decref(j);
	return *data != NULL ? IOTCA_OK : IOTCA_ENOMEM;
}

void
dev_changes_opts(feed_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->name = "device-changes";
	o->prefix = ASSOC_SN_PREFIX;
	o->max_entries = DEV_CHANGES_KEEP;
	o->max_bytes = DEV_CHANGES_BYTES;
	o->parse = dev_change_parse;
}

typedef struct dev_changes_out {
	iotca_rpc_call *call;
	Iotca__V1__ListDeviceChangesResponse *resp;
} dev_changes_out;

/* feed_emit_fn: copies a change into the response (under the feed's
 * lock: arena allocations only). */
static iotca_err
dev_change_emit(const void *data, int64_t revision, void *arg)
{
	const dev_change *c = data;
	dev_changes_out *o = arg;
	iotca_arena *a = iotca_rpc_call_arena(o->call);
	Iotca__V1__DeviceChange *m;

	if (o->resp->changes == NULL &&
	    (o->resp->changes = iotca_arena_alloc(
	         a, DEV_CHANGES_ANSWER_MAX * sizeof(*o->resp->changes))) ==
	        NULL)
		return IOTCA_ENOMEM;
	if ((m = iotca_arena_zalloc(a, sizeof(*m))) == NULL)
		return IOTCA_ENOMEM;
	iotca__v1__device_change__init(m);
	m->account_id = iotca_arena_strdup(a, c->account_id);
	m->cert_sn = iotca_arena_strdup(a, c->cert_sn);
	m->ca_id = iotca_arena_strdup(a, c->ca_id);
	m->product_key = iotca_arena_strdup(a, c->pk);
	m->device_name = iotca_arena_strdup(a, c->dn);
	m->device_status = c->status;
	m->revision = revision;
	if (!m->account_id || !m->cert_sn || !m->ca_id || !m->product_key ||
	    !m->device_name)
		return IOTCA_ENOMEM;
	o->resp->changes[o->resp->n_changes++] = m;
	return IOTCA_OK;
}

iotca_err
assoc_list_device_changes(iotca_rpc_call *call, const ProtobufCMessage *req,
                          ProtobufCMessage *resp, void *arg)
{
	const Iotca__V1__ListDeviceChangesRequest *in = (const void *)req;
	dev_changes_out o = {call, (void *)resp};
	assoc_svc *a = arg;
	iotca_principal who;
	feed_answer ans;
	iotca_err rc;

	/* Inline: the internal check and the feed take no I/O. */
	if ((rc = iotca_auth_call(a->auth, call, IOTCA_PRINCIPAL_INTERNAL,
	                          &who)) != IOTCA_OK ||
	    (rc = feed_rpc_query(atomic_load(&a->changes), "device-changes",
	                         call, in->after_revision,
	                         DEV_CHANGES_ANSWER_MAX,
	                         DEV_CHANGES_ANSWER_BYTES, dev_change_emit, &o,
	                         &ans)) != IOTCA_OK)
		return rc;
	o.resp->revision = ans.revision;
	o.resp->reset = ans.reset;
	return IOTCA_OK;
}
