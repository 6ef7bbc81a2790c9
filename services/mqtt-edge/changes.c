/*
 * changes.c - revocation within seconds: a thread asks the registry
 * (ListCaChanges) and the association service (ListDeviceChanges) what
 * changed since the revision of its previous answer, about once per
 * IOTCA_EDGE_CHANGES_POLL_MS. What changed is dropped from (or written
 * into) the caches, and every loop is told to close the sessions a change
 * revokes. A "reset" answer (the service cannot list everything since our
 * revision) drops the whole cache and has every session checked again.
 */
#include <stdlib.h>
#include <string.h>

#include "edge_int.h"
#include "iotca/v1/association.pb-c.h"
#include "iotca/v1/registry.pb-c.h"
#include "log/log.h"

struct edge_changes {
	edge *e;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	int64_t ca_rev, dev_rev; /* 0: not asked yet */
	atomic_int ready;
	int ca_warned, dev_warned;
};

static void
broadcast(edge *e, edge_msg_kind kind, int ok, const char *s1, const char *s2,
          const edge_dev *d)
{
	edge_msg *m = edge_msg_new(kind, 0);

	if (m == NULL)
		return;
	m->ok = ok;
	m->s1 = s1 != NULL ? strdup(s1) : NULL;
	m->s2 = s2 != NULL ? strdup(s2) : NULL;
	if (d != NULL && (m->val = malloc(sizeof(*d))) != NULL)
		memcpy(m->val, d, sizeof(*d));
	edge_loop_broadcast(e, m);
}

static void
warn_once(int *warned, const char *rpc, const iotca_errbuf *eb)
{
	if (*warned)
		return;
	*warned = 1;
	iotca_log_warn("EDGE-CHANGES-FAILED",
	               "rpc=%s msg=\"%s\" effect=\"revocations are not seen "
	               "until it answers; cached answers still expire\"",
	               rpc, iotca_errbuf_msg(eb));
}

static void
poll_cas(edge_changes *ch)
{
	edge *e = ch->e;
	Iotca__V1__ListCaChangesRequest req =
	    IOTCA__V1__LIST_CA_CHANGES_REQUEST__INIT;
	Iotca__V1__ListCaChangesResponse *r;
	ProtobufCMessage *resp = NULL;
	iotca_errbuf eb;
	size_t i;

	req.after_revision = ch->ca_rev;
	if (iotca_rpc_client_call(
	        e->registry, &iotca__v1__registry__descriptor, "ListCaChanges",
	        &req.base, e->o.lookup_timeout_ms, &resp, &eb) != IOTCA_OK) {
		warn_once(&ch->ca_warned, "ListCaChanges", &eb);
		return;
	}
	ch->ca_warned = 0;
	r = (void *)resp;
	if (ch->ca_rev != 0 && r->reset) {
		iotca_log_info("EDGE-CHANGES-RESET", "service=registry");
		edge_auth_forget_issuers(e->auth);
		broadcast(e, EDGE_MSG_RESET, 1, NULL, NULL, NULL);
	} else if (ch->ca_rev != 0 && r->n_changes > 0) {
		edge_auth_forget_issuers(e->auth);
		for (i = 0; i < r->n_changes; i++)
			if (!r->changes[i]->active)
				broadcast(e, EDGE_MSG_CA_OFF, 0,
				          r->changes[i]->ca_id, NULL, NULL);
	}
	if (r->revision > ch->ca_rev)
		ch->ca_rev = r->revision;
	protobuf_c_message_free_unpacked(resp, NULL);
}

static void
device_change(edge *e, const Iotca__V1__DeviceChange *dc)
{
	edge_dev d = {0};
	int enabled = dc->device_status ==
	              IOTCA__V1__DEVICE_STATUS__DEVICE_STATUS_ENABLED;

	if (strlen(dc->account_id) >= EDGE_ID_MAX ||
	    strlen(dc->cert_sn) >= EDGE_SN_MAX ||
	    strlen(dc->ca_id) >= EDGE_ID_MAX ||
	    strlen(dc->product_key) >= EDGE_PK_MAX ||
	    strlen(dc->device_name) >= EDGE_DN_MAX)
		return;
	d.found = dc->device_status !=
	          IOTCA__V1__DEVICE_STATUS__DEVICE_STATUS_UNSPECIFIED;
	d.enabled = enabled;
	strcpy(d.ca_id, dc->ca_id);
	strcpy(d.pk, dc->product_key);
	strcpy(d.dn, dc->device_name);
	if (d.found)
		edge_auth_put_device(e->auth, dc->account_id, dc->cert_sn, &d);
	else
		edge_auth_forget_device(e->auth, dc->account_id, dc->cert_sn);
	broadcast(e, EDGE_MSG_DEVICE_CHG, enabled, dc->account_id, dc->cert_sn,
	          &d);
}

static void
poll_devices(edge_changes *ch)
{
	edge *e = ch->e;
	Iotca__V1__ListDeviceChangesRequest req =
	    IOTCA__V1__LIST_DEVICE_CHANGES_REQUEST__INIT;
	Iotca__V1__ListDeviceChangesResponse *r;
	ProtobufCMessage *resp = NULL;
	iotca_errbuf eb;
	size_t i;

	req.after_revision = ch->dev_rev;
	if (iotca_rpc_client_call(
	        e->association, &iotca__v1__association__descriptor,
	        "ListDeviceChanges", &req.base, e->o.lookup_timeout_ms, &resp,
	        &eb) != IOTCA_OK) {
		warn_once(&ch->dev_warned, "ListDeviceChanges", &eb);
		return;
	}
	ch->dev_warned = 0;
	r = (void *)resp;
	if (ch->dev_rev != 0 && r->reset) {
		iotca_log_info("EDGE-CHANGES-RESET", "service=association");
		edge_auth_forget_devices(e->auth);
		broadcast(e, EDGE_MSG_RESET, 0, NULL, NULL, NULL);
	} else if (ch->dev_rev != 0) {
		for (i = 0; i < r->n_changes; i++)
			device_change(e, r->changes[i]);
	}
	if (r->revision > ch->dev_rev)
		ch->dev_rev = r->revision;
	protobuf_c_message_free_unpacked(resp, NULL);
}

static void *
changes_main(void *arg)
{
	edge_changes *ch = arg;
	struct timespec ts;
	long ms = ch->e->o.changes_poll_ms;

	pthread_mutex_lock(&ch->mu);
	while (!ch->stop) {
		pthread_mutex_unlock(&ch->mu);
		poll_cas(ch);
		poll_devices(ch);
		if (ch->ca_rev != 0 && ch->dev_rev != 0)
			atomic_store(&ch->ready, 1);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += ms / 1000;
		ts.tv_nsec += (ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_mutex_lock(&ch->mu);
		if (!ch->stop)
			pthread_cond_timedwait(&ch->cv, &ch->mu, &ts);
	}
	pthread_mutex_unlock(&ch->mu);
	return NULL;
}

iotca_err
edge_changes_start(edge *e, edge_changes **out, iotca_errbuf *eb)
{
	edge_changes *ch = calloc(1, sizeof(*ch));

	if (ch == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	ch->e = e;
	pthread_mutex_init(&ch->mu, NULL);
	pthread_cond_init(&ch->cv, NULL);
	if (pthread_create(&ch->thread, NULL, changes_main, ch) != 0) {
		free(ch);
		return iotca_errbuf_set(eb, IOTCA_EINTERNAL,
		                        "cannot start the change poller");
	}
	*out = ch;
	return IOTCA_OK;
}

void
edge_changes_stop(edge_changes *ch)
{
	if (ch == NULL)
		return;
	pthread_mutex_lock(&ch->mu);
	ch->stop = 1;
	pthread_cond_signal(&ch->cv);
	pthread_mutex_unlock(&ch->mu);
	pthread_join(ch->thread, NULL);
	pthread_mutex_destroy(&ch->mu);
	pthread_cond_destroy(&ch->cv);
	free(ch);
}

int
edge_changes_ready(edge_changes *ch)
{
	return ch != NULL && atomic_load(&ch->ready);
}
