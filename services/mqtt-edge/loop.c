/*
 * loop.c - the edge's event loops: sockets, TLS and connection lifecycle.
 *
 * Each loop owns an epoll set (level-triggered), a SO_REUSEPORT listener,
 * an eventfd for its mailbox and the connections it accepted. A
 * connection goes HANDSHAKE -> CONNECT -> SESSION -> gone (CLOSING when
 * a last packet, e.g. CONNACK 5, must go out first).
 *
 * Certificate verification happens inside the TLS handshake so that a
 * certificate that does not verify gets a TLS alert. When the CAs for the
 * certificate's issuer are not cached, the handshake must wait for
 * ResolveIssuer without blocking the loop: the handshake runs as an
 * OpenSSL async job (SSL_MODE_ASYNC, during the handshake only), and the
 * verify callback pauses it (ASYNC_pause_job). The loop starts the lookup
 * from its own stack (never from the job's small one), and resumes the
 * handshake when the answer arrives. Resumed sessions skip the callback;
 * their certificate is checked the same way right after the handshake
 * (without verifying its signature again while the CA that verified it
 * is unchanged: see session_mark).
 *
 * OpenSSL reads ahead (tls.c): one read() takes whatever the peer sent,
 * so bytes can wait in OpenSSL's buffer where epoll does not see them.
 * They are read when the handshake ends (conn_tls_ready), and a
 * connection that stops reading at its budget with some left is read
 * again after the round of events (loop_read_again).
 *
 * MQTT itself is in session.c.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/async.h>
#include <openssl/err.h>

#include "edge_int.h"
#include "log/log.h"

#define LOOP_EVENTS    256
#define LOOP_TICK_MS   250
#define READ_CHUNK     16384
#define READ_BUDGET    (256u << 10) /* bytes read per wake-up per conn */
#define CLOSE_GRACE_MS 1000         /* to flush a last packet */

static int edge_verify_cb(X509_STORE_CTX *xs, void *arg);

int64_t
edge_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
edge_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ messages */

edge_msg *
edge_msg_new(edge_msg_kind kind, uint64_t conn_id)
{
	edge_msg *m = calloc(1, sizeof(*m));

	if (m != NULL) {
		m->kind = kind;
		m->conn_id = conn_id;
	}
	return m;
}

void
edge_msg_free(edge_msg *m)
{
	if (m == NULL)
		return;
	if (m->kind == EDGE_MSG_ISSUER_DONE)
		edge_iss_unref(m->val);
	else
		free(m->val);
	free(m->s1);
	free(m->s2);
	free(m->payload);
	free(m);
}

void
edge_loop_post(edge_loop *l, edge_msg *m)
{
	uint64_t one = 1;
	int wake;

	pthread_mutex_lock(&l->mu);
	if (l->closed) {
		pthread_mutex_unlock(&l->mu);
		edge_msg_free(m);
		return;
	}
	m->next = NULL;
	wake = l->mhead == NULL;
	if (l->mtail != NULL)
		l->mtail->next = m;
	else
		l->mhead = m;
	l->mtail = m;
	pthread_mutex_unlock(&l->mu);
	if (wake && write(l->efd, &one, sizeof(one)) < 0) {
		/* the counter is full: the loop is awake anyway */
	}
}

void
edge_loop_broadcast(edge *e, edge_msg *m)
{
	unsigned i;
	edge_msg *c;

	for (i = 0; i < e->nloops; i++) {
		if ((c = edge_msg_new(m->kind, m->conn_id)) == NULL)
			continue;
		c->ok = m->ok;
		c->reason = m->reason;
		c->s1 = m->s1 != NULL ? strdup(m->s1) : NULL;
		c->s2 = m->s2 != NULL ? strdup(m->s2) : NULL;
		if (m->kind == EDGE_MSG_DEVICE_CHG && m->val != NULL &&
		    (c->val = malloc(sizeof(edge_dev))) != NULL)
			memcpy(c->val, m->val, sizeof(edge_dev));
		edge_loop_post(e->loops[i], c);
	}
	edge_msg_free(m);
}

/* ------------------------------------------------------------ conn table */

static edge_conn *
conn_find(edge_loop *l, uint64_t id)
{
	uint32_t slot = (uint32_t)id;
	edge_conn *c;

	if (slot >= l->nslots || (c = l->slots[slot]) == NULL || c->cid != id)
		return NULL;
	return c;
}

static int
conn_slot_alloc(edge_loop *l, edge_conn *c)
{
	uint32_t slot;

	if (l->nfree > 0) {
		slot = l->freelist[--l->nfree];
	} else {
		if (l->nslots == l->capslots) {
			uint32_t n = l->capslots ? 2 * l->capslots : 1024;
			edge_conn **s = realloc(l->slots, n * sizeof(*s));
			uint32_t *f;

			if (s == NULL)
				return -1;
			l->slots = s;
			if ((f = realloc(l->freelist, n * sizeof(*f))) == NULL)
				return -1;
			l->freelist = f;
			l->capslots = n;
		}
		slot = l->nslots++;
	}
	l->gen = (l->gen + 1) & 0xffffff;
	c->cid = ((uint64_t)l->index << 56) | ((uint64_t)l->gen << 32) | slot;
	l->slots[slot] = c;
	return 0;
}

static void
conn_slot_free(edge_loop *l, edge_conn *c)
{
	uint32_t slot = (uint32_t)c->cid;

	l->slots[slot] = NULL;
	l->freelist[l->nfree++] = slot;
}

/* ------------------------------------------------------------ epoll */

void
edge_conn_interest(edge_conn *c)
{
	struct epoll_event ev = {0};
	uint32_t want = 0;

	if (!c->paused && c->state != CS_VERIFY) {
		/* a closing connection is not read from: its errors and
		 * hang-up are reported anyway */
		want = c->closing ? 0 : EPOLLIN;
		if (c->out.len > 0 || c->ssl_wants_write)
			want |= EPOLLOUT;
	}
	if (want == c->events)
		return;
	ev.events = want;
	ev.data.ptr = c;
	if (epoll_ctl(c->loop->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->events = want;
}

/* ------------------------------------------------------------ close */

static void
conn_free(edge_conn *c)
{
	edge_loop *l = c->loop;
	size_t i;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		l->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	conn_slot_free(l, c);
	close(c->fd); /* also leaves the epoll set: the fd is not shared */
	SSL_free(c->ssl);
	ERR_clear_error();
	edge_iss_unref(c->iss);
	iotca_mqtt_decoder_destroy(c->dec);
	iotca_buf_free(&c->out);
	iotca_buf_free(&c->pend);
	free(c->client_id);
	free(c->will_topic);
	free(c->will_msg);
	for (i = 0; i < c->nsubs; i++)
		free(c->subs[i]);
	free(c->q2_ids);
	for (i = 0; i < c->ninflight; i++)
		free(c->inflight[i].pkt);
	free(c->inflight);
	atomic_fetch_sub(&l->e->st.connections, 1);
	free(c);
}

/*
 * Ends a connection now. A session sends its DISCONNECTED event (and its
 * will, unless the device said DISCONNECT) and leaves the routes. The
 * TLS close_notify is sent when the connection is healthy.
 */
void
edge_conn_close(edge_conn *c, edge_reason reason)
{
	edge *e = c->loop->e;

	if (c->paused) {
		/* a handshake paused in the verify callback: let the job run
		 * to its end (it fails) so OpenSSL frees its stack */
		c->abort_job = 1;
		c->paused = 0;
		SSL_do_handshake(c->ssl);
	}
	if (c->state == CS_SESSION) {
		edge_session_end(c, reason);
		atomic_fetch_sub(&e->st.sessions, 1);
	}
	atomic_fetch_add(&e->st.closed[reason], 1);
	if (c->state != CS_HANDSHAKE && reason != EDGE_R_CONNECTION_LOST &&
	    reason != EDGE_R_PROTOCOL_ERROR) {
		SSL_shutdown(c->ssl); /* best effort, non-blocking */
		edge_conn_flush(c);
	}
	conn_free(c);
}

/* Sends what is queued, then closes (CONNACK 5, SUBACK then close ...). */
void
edge_conn_close_after_flush(edge_conn *c, edge_reason reason)
{
	c->closing = 1;
	c->close_reason = reason;
	c->deadline_ms = edge_now_ms() + CLOSE_GRACE_MS;
	if (edge_conn_flush(c) != 0 || c->out.len == 0)
		edge_conn_close(c, reason);
}

/* ------------------------------------------------------------ writing */

/* Writes queued bytes through TLS. 0, or -1 when the connection failed
 * (it is then closed by the caller's next step: check c->dead). */
int
edge_conn_flush(edge_conn *c)
{
	int n, err;

	c->ssl_wants_write = 0;
	while (c->out.len > 0) {
		n = SSL_write(c->ssl, c->out.data,
		              c->out.len > INT32_MAX ? INT32_MAX
		                                     : (int)c->out.len);
		if (n > 0) {
			memmove(c->out.data, c->out.data + n,
			        c->out.len - (size_t)n);
			c->out.len -= (size_t)n;
			atomic_fetch_add(&c->loop->e->st.bytes_out,
			                 (uint64_t)n);
			continue;
		}
		err = SSL_get_error(c->ssl, n);
		ERR_clear_error();
		if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
			c->ssl_wants_write = err == SSL_ERROR_WANT_WRITE;
			break;
		}
		c->dead = 1;
		return -1;
	}
	if (c->out.len == 0 && c->out.size > 4096)
		iotca_buf_free(&c->out); /* idle connections hold nothing */
	if (!c->dead)
		edge_conn_interest(c);
	return 0;
}

/* ------------------------------------------------------------ handshake */

static void conn_handshake(edge_conn *c);
static void conn_read(edge_conn *c);

static void
conn_auth_failed(edge_conn *c, edge_reason r)
{
	edge *e = c->loop->e;

	atomic_fetch_add(&e->st.auth_failed[r], 1);
	edge_plane_event(
	    e->plane,
	    IOTCA__V1__DEVICE_MESSAGE_KIND__DEVICE_MESSAGE_KIND_AUTH_FAILED,
	    &c->ident, c->client_id, c->peer, r);
	iotca_log_info("EDGE-AUTH-FAILED",
	               "peer=%s reason=%s ca_id=%s sn=%s pk=%s dn=%s", c->peer,
	               edge_reason_word(r), c->ident.ca_id, c->ident.sn,
	               c->ident.pk, c->ident.dn);
}

static int
verify_error_code(edge_reason r)
{
	switch (r) {
	case EDGE_R_UNKNOWN_ISSUER:
		return X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY;
	case EDGE_R_CERT_EXPIRED:
		return X509_V_ERR_CERT_HAS_EXPIRED;
	case EDGE_R_BAD_SIGNATURE:
		return X509_V_ERR_CERT_SIGNATURE_FAILURE;
	default:
		return X509_V_ERR_APPLICATION_VERIFICATION;
	}
}

/* Keeps with the TLS session which CA verified its certificate, so that
 * a resumption need not verify the signature again (edge_auth_check). */
static void
session_mark(SSL *ssl, const uint8_t *fp)
{
	SSL_SESSION *s = SSL_get_session(ssl);
	int idx = edge_tls_fp_index();
	uint8_t *m;

	if (s == NULL || idx < 0 || SSL_SESSION_get_ex_data(s, idx) != NULL ||
	    (m = malloc(EDGE_FP_LEN)) == NULL)
		return; /* a resumption then verifies again */
	memcpy(m, fp, EDGE_FP_LEN);
	if (SSL_SESSION_set_ex_data(s, idx, m) != 1)
		free(m);
}

/* What session_mark kept, or NULL. */
static const uint8_t *
session_marked(SSL *ssl)
{
	SSL_SESSION *s = SSL_get_session(ssl);
	int idx = edge_tls_fp_index();

	return s != NULL && idx >= 0 ? SSL_SESSION_get_ex_data(s, idx) : NULL;
}

/*
 * OpenSSL's certificate check, replaced whole: the peer's certificate
 * must be signed by a registered, active CA with its issuer DN. Runs
 * inside the handshake's async job; see the file comment.
 */
static int
edge_verify_cb(X509_STORE_CTX *xs, void *arg)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(
	    xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	edge_conn *c = SSL_get_app_data(ssl);
	X509 *cert = X509_STORE_CTX_get0_cert(xs);
	const unsigned char *der = NULL;
	size_t len = 0;
	edge_reason r = EDGE_R_BAD_CERT;
	uint8_t fp[EDGE_FP_LEN];

	(void)arg;
	if (cert == NULL ||
	    X509_NAME_get0_der(X509_get_issuer_name(cert), &der, &len) != 1)
		goto refuse;
	while (c->iss == NULL && !c->iss_failed && !c->abort_job) {
		if (edge_auth_issuer_peek(c->loop->e->auth, der, len,
		                          &c->iss) == EDGE_OK)
			break;
		/* the loop starts the lookup and resumes us with the
		 * answer in c->iss (or c->iss_failed) */
		c->want_der = der;
		c->want_len = len;
		if (ASYNC_get_current_job() == NULL || ASYNC_pause_job() != 1) {
			c->want_der = NULL;
			c->iss_failed = 1;
		}
	}
	r = EDGE_R_LOOKUP_FAILED;
	if (c->abort_job || c->iss_failed || c->iss == NULL)
		goto refuse;
	if (edge_auth_check(c->iss, cert, NULL, &c->ident, &r, fp) != EDGE_OK)
		goto refuse;
	session_mark(ssl, fp);
	edge_iss_unref(c->iss);
	c->iss = NULL;
	c->verified = 1;
	return 1;
refuse:
	c->fail_reason = r;
	X509_STORE_CTX_set_error(xs, verify_error_code(r));
	return 0;
}

/* Starts the issuer lookup a paused handshake asked for; resumes it at
 * once if the answer is already cached. */
static void
conn_start_issuer_lookup(edge_conn *c)
{
	edge_verdict v;

	v = edge_auth_issuer(c->loop->e->auth, c->want_der, c->want_len,
	                     c->loop, c->cid, &c->iss);
	c->want_der = NULL;
	if (v == EDGE_OK) {
		c->paused = 0;
		conn_handshake(c);
	}
}

/* Checks the certificate of a resumed session (the verify callback did
 * not run). 1 verified, 0 waiting for the issuer, -1 refused and closed
 * (c is gone). */
static int
conn_check_resumed(edge_conn *c)
{
	X509 *cert = SSL_get0_peer_certificate(c->ssl);
	const unsigned char *der = NULL;
	size_t len = 0;
	edge_reason r = EDGE_R_BAD_CERT;

	if (cert == NULL ||
	    X509_NAME_get0_der(X509_get_issuer_name(cert), &der, &len) != 1)
		goto refuse;
	if (c->iss == NULL && !c->iss_failed) {
		if (edge_auth_issuer(c->loop->e->auth, der, len, c->loop,
		                     c->cid, &c->iss) == EDGE_WAIT) {
			c->state = CS_VERIFY;
			edge_conn_interest(c); /* nothing until the answer */
			return 0;
		}
	}
	r = EDGE_R_LOOKUP_FAILED;
	if (c->iss == NULL ||
	    edge_auth_check(c->iss, cert, session_marked(c->ssl), &c->ident, &r,
	                    NULL) != EDGE_OK)
		goto refuse;
	edge_iss_unref(c->iss);
	c->iss = NULL;
	c->verified = 1;
	return 1;
refuse:
	edge_iss_unref(c->iss);
	c->iss = NULL;
	conn_auth_failed(c, r);
	edge_conn_close(c, EDGE_R_CONNECTION_LOST);
	return -1;
}

/* The TLS handshake is done and the certificate verified. Reads what
 * came behind the client's Finished (read-ahead may hold it already:
 * epoll would not report it again). */
static void
conn_tls_ready(edge_conn *c)
{
	edge *e = c->loop->e;

	SSL_clear_mode(c->ssl, SSL_MODE_ASYNC);
	atomic_fetch_add(&e->st.handshakes_ok, 1);
	c->state = CS_CONNECT;
	c->deadline_ms = edge_now_ms() + e->o.connect_timeout_ms;
	c->last_rx_ms = edge_now_ms();
	edge_conn_interest(c);
	if (edge_session_tls_ready(c) != 0) /* starts the device lookup */
		return;                     /* closed */
	if (SSL_has_pending(c->ssl))
		conn_read(c);
}

static void
conn_handshake(edge_conn *c)
{
	edge *e = c->loop->e;
	int r, err;

	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		if (SSL_session_reused(c->ssl)) {
			atomic_fetch_add(&e->st.resumed, 1);
			c->state = CS_VERIFY;
			if (conn_check_resumed(c) != 1)
				return;
		}
		conn_tls_ready(c);
		return;
	}
	err = SSL_get_error(c->ssl, r);
	switch (err) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		c->ssl_wants_write = err == SSL_ERROR_WANT_WRITE;
		edge_conn_interest(c);
		return;
	case SSL_ERROR_WANT_ASYNC:
		/* paused in the verify callback: no I/O until resumed */
		c->paused = 1;
		edge_conn_interest(c);
		if (c->want_der != NULL)
			conn_start_issuer_lookup(c);
		return;
	default:
		ERR_clear_error();
		atomic_fetch_add(&e->st.handshakes_failed, 1);
		if (c->fail_reason != EDGE_R_NONE)
			conn_auth_failed(c, c->fail_reason);
		edge_conn_close(c, EDGE_R_CONNECTION_LOST);
	}
}

/* ------------------------------------------------------------ reading */

/* Reads again, after this round of events, a connection that used its
 * budget with bytes left in OpenSSL's read-ahead buffer (epoll does not
 * see those). */
static void
loop_read_again(edge_loop *l, uint64_t cid)
{
	uint64_t *a;

	if (l->nagain == l->capagain) {
		size_t n = l->capagain ? 2 * l->capagain : 16;

		if ((a = realloc(l->again, n * sizeof(*a))) == NULL)
			return; /* it is read when its peer sends more */
		l->again = a;
		l->capagain = n;
	}
	l->again[l->nagain++] = cid;
}

static void
conn_read(edge_conn *c)
{
	edge_loop *l = c->loop;
	size_t budget = READ_BUDGET;
	int n, err;

	for (;;) {
		if (budget == 0) {
			if (SSL_has_pending(c->ssl))
				loop_read_again(l, c->cid);
			break;
		}
		n = SSL_read(c->ssl, l->rbuf, READ_CHUNK);
		if (n > 0) {
			atomic_fetch_add(&l->e->st.bytes_in, (uint64_t)n);
			c->last_rx_ms = edge_now_ms();
			if (edge_session_input(c, (const uint8_t *)l->rbuf,
			                       (size_t)n) != 0)
				return; /* closed */
			budget -= (size_t)n < budget ? (size_t)n : budget;
			continue;
		}
		err = SSL_get_error(c->ssl, n);
		ERR_clear_error();
		if (err == SSL_ERROR_WANT_READ)
			break;
		if (err == SSL_ERROR_WANT_WRITE) {
			c->ssl_wants_write = 1;
			break;
		}
		edge_conn_close(c, err == SSL_ERROR_ZERO_RETURN &&
		                           c->state != CS_SESSION
		                       ? EDGE_R_CLIENT_DISCONNECT
		                       : EDGE_R_CONNECTION_LOST);
		return;
	}
	if (edge_conn_flush(c) != 0)
		edge_conn_close(c, EDGE_R_CONNECTION_LOST);
}

static void
conn_io(edge_conn *c, uint32_t events)
{
	if (c->paused)
		return;
	if (c->state == CS_HANDSHAKE) {
		conn_handshake(c);
		return;
	}
	if (c->state == CS_VERIFY)
		return; /* waiting for the issuer of a resumed session */
	if ((events & EPOLLOUT) || c->ssl_wants_write) {
		if (edge_conn_flush(c) != 0) {
			edge_conn_close(c, EDGE_R_CONNECTION_LOST);
			return;
		}
		if (c->closing && c->out.len == 0) {
			edge_conn_close(c, c->close_reason);
			return;
		}
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		if (c->closing) {
			/* nothing more is read from a connection on its way
			 * out; a reset ends it */
			if (events & (EPOLLERR | EPOLLHUP))
				edge_conn_close(c, c->close_reason);
			return;
		}
		conn_read(c);
	}
}

/* ------------------------------------------------------------ accept */

static void
conn_peer_text(const struct sockaddr_storage *ss, char *out, size_t n)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)ss;

		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
		snprintf(out, n, "%s:%u", ip, ntohs(s->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)ss;

		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
		snprintf(out, n, "[%s]:%u", ip, ntohs(s->sin6_port));
	} else {
		snprintf(out, n, "?");
	}
}

static void
conn_accept_one(edge_loop *l, int fd, const struct sockaddr_storage *ss)
{
	edge *e = l->e;
	struct epoll_event ev = {0};
	edge_conn *c = calloc(1, sizeof(*c));
	SSL_CTX *ctx = edge_tls_ctx_get(e);

	/* TCP_NODELAY comes from the listener */
	if (c == NULL || ctx == NULL || (c->ssl = SSL_new(ctx)) == NULL ||
	    conn_slot_alloc(l, c) != 0) {
		if (c != NULL)
			SSL_free(c->ssl);
		SSL_CTX_free(ctx);
		free(c);
		close(fd);
		ERR_clear_error();
		return;
	}
	SSL_CTX_free(ctx); /* the SSL holds its own reference */
	c->fd = fd;
	c->loop = l;
	c->state = CS_HANDSHAKE;
	c->deadline_ms = edge_now_ms() + e->o.handshake_timeout_ms;
	iotca_buf_init(&c->out, e->o.max_packet + 65536);
	iotca_buf_init(&c->pend, 2 * e->o.max_packet);
	conn_peer_text(ss, c->peer, sizeof(c->peer));
	SSL_set_fd(c->ssl, fd);
	SSL_set_app_data(c->ssl, c);
	SSL_set_accept_state(c->ssl);
	SSL_set_mode(c->ssl, SSL_MODE_ASYNC);
	c->next = l->conns;
	if (l->conns != NULL)
		l->conns->prev = c;
	l->conns = c;
	atomic_fetch_add(&e->st.connections, 1);
	atomic_fetch_add(&e->st.accepted, 1);
	ev.events = EPOLLIN;
	ev.data.ptr = c;
	c->events = EPOLLIN;
	if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
		conn_free(c);
		return;
	}
}

static void
loop_accept(edge_loop *l)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int i, fd;

	for (i = 0; i < 64; i++) {
		sl = sizeof(ss);
		fd = accept4(l->lfd, (struct sockaddr *)&ss, &sl,
		             SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN, or a transient error */
		if (atomic_load(&l->e->st.connections) >=
		    l->e->o.max_connections) {
			atomic_fetch_add(&l->e->st.refused_cap, 1);
			close(fd);
			continue;
		}
		conn_accept_one(l, fd, &ss);
	}
}

/* ------------------------------------------------------------ mailbox */

static void
loop_msg(edge_loop *l, edge_msg *m)
{
	edge_conn *c, *next;

	switch (m->kind) {
	case EDGE_MSG_CA_OFF:
	case EDGE_MSG_DEVICE_CHG:
	case EDGE_MSG_RESET:
		for (c = l->conns; c != NULL; c = next) {
			next = c->next;
			edge_session_recheck(c, m);
		}
		return;
	default:
		break;
	}
	if ((c = conn_find(l, m->conn_id)) == NULL)
		return;
	switch (m->kind) {
	case EDGE_MSG_ISSUER_DONE:
		if (c->iss == NULL) {
			c->iss = m->val;
			m->val = NULL;
		}
		c->iss_failed = !m->ok;
		if (c->state == CS_HANDSHAKE && c->paused) {
			c->paused = 0;
			conn_handshake(c);
		} else if (c->state == CS_VERIFY) {
			if (conn_check_resumed(c) == 1)
				conn_tls_ready(c);
		} else {
			edge_session_issuer_done(c);
		}
		break;
	default:
		edge_session_msg(c, m);
		break;
	}
}

static void
loop_drain(edge_loop *l)
{
	edge_msg *m, *next;
	uint64_t v;

	if (read(l->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing new */
	}
	pthread_mutex_lock(&l->mu);
	m = l->mhead;
	l->mhead = l->mtail = NULL;
	pthread_mutex_unlock(&l->mu);
	for (; m != NULL; m = next) {
		next = m->next;
		loop_msg(l, m);
		edge_msg_free(m);
	}
}

/* ------------------------------------------------------------ timers */

static void
loop_tick(edge_loop *l)
{
	int64_t now = edge_now_ms();
	edge_conn *c, *next;

	for (c = l->conns; c != NULL; c = next) {
		next = c->next;
		if (c->closing) {
			if (now >= c->deadline_ms)
				edge_conn_close(c, c->close_reason);
			continue;
		}
		switch (c->state) {
		case CS_HANDSHAKE:
		case CS_VERIFY:
			if (now >= c->deadline_ms) {
				atomic_fetch_add(&l->e->st.handshake_timeouts,
				                 1);
				edge_conn_close(c, EDGE_R_CONNECTION_LOST);
			}
			break;
		case CS_CONNECT:
			if (now >= c->deadline_ms)
				edge_conn_close(c, EDGE_R_CONNECTION_LOST);
			break;
		case CS_SESSION:
			edge_session_tick(c, now);
			break;
		}
	}
}

/* ------------------------------------------------------------ the loop */

/* Reads the connections put on the again list in the last round. */
static void
loop_again(edge_loop *l)
{
	size_t i, n = l->nagain;
	edge_conn *c;

	l->nagain = 0; /* conn_read may add to it again */
	for (i = 0; i < n; i++) {
		c = conn_find(l, l->again[i]);
		if (c != NULL && !c->paused && !c->closing &&
		    (c->state == CS_CONNECT || c->state == CS_SESSION))
			conn_read(c);
	}
}

static void
loop_shutdown_conns(edge_loop *l)
{
	while (l->conns != NULL)
		edge_conn_close(l->conns, EDGE_R_SHUTDOWN);
}

static void *
loop_main(void *arg)
{
	edge_loop *l = arg;
	struct epoll_event evs[LOOP_EVENTS];
	int64_t next_tick = edge_now_ms() + LOOP_TICK_MS, now;
	int i, n;

	while (!atomic_load(&l->stop)) {
		now = edge_now_ms();
		n = epoll_wait(l->ep, evs, LOOP_EVENTS,
		               next_tick > now && l->nagain == 0
		                   ? (int)(next_tick - now)
		                   : 0);
		for (i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;

			if (p == &l->lfd)
				loop_accept(l);
			else if (p == &l->efd)
				loop_drain(l);
			else
				conn_io(p, evs[i].events);
		}
		loop_again(l);
		if ((now = edge_now_ms()) >= next_tick) {
			loop_tick(l);
			next_tick = now + LOOP_TICK_MS;
		}
	}
	loop_drain(l);
	loop_shutdown_conns(l);
	pthread_mutex_lock(&l->mu);
	l->closed = 1;
	pthread_mutex_unlock(&l->mu);
	loop_drain(l); /* whatever came while closing */
	ASYNC_cleanup_thread();
	return NULL;
}

/* Binds a listener with SO_REUSEPORT; port from the address or *port. */
static iotca_err
loop_listen(const char *listen_addr, int *port, int *out, iotca_errbuf *eb)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, one = 1;

	if (edge_parse_hostport(listen_addr, *port, &ss, &sl) != 0)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "cannot use '%s' as an address: check "
		                        "IOTCA_EDGE_LISTEN (ip:port)",
		                        listen_addr);
	fd =
	    socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return iotca_errbuf_set(eb, IOTCA_EINTERNAL, "socket: %s",
		                        strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	/* inherited by every accepted socket: one call instead of one each */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) != 0 ||
	    listen(fd, 4096) != 0) {
		int err = errno;

		close(fd);
		return iotca_errbuf_set(eb, IOTCA_EUNAVAIL,
		                        "cannot listen on '%s' (%s): check "
		                        "IOTCA_EDGE_LISTEN",
		                        listen_addr, strerror(err));
	}
	sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*port = ntohs(ss.ss_family == AF_INET
	                  ? ((struct sockaddr_in *)&ss)->sin_port
	                  : ((struct sockaddr_in6 *)&ss)->sin6_port);
	*out = fd;
	return IOTCA_OK;
}

static iotca_err
loop_create(edge *e, unsigned index, int *port, edge_loop **out,
            iotca_errbuf *eb)
{
	edge_loop *l = calloc(1, sizeof(*l));
	struct epoll_event ev = {0};
	iotca_err rc;

	if (l == NULL || (l->rbuf = malloc(READ_CHUNK)) == NULL) {
		free(l);
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	}
	l->e = e;
	l->index = index;
	l->lfd = l->efd = l->ep = -1;
	pthread_mutex_init(&l->mu, NULL);
	*out = l;
	if ((rc = loop_listen(e->o.listen, port, &l->lfd, eb)) != IOTCA_OK)
		return rc;
	if ((l->ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		return iotca_errbuf_set(eb, IOTCA_EINTERNAL, "epoll: %s",
		                        strerror(errno));
	ev.events = EPOLLIN;
	ev.data.ptr = &l->lfd;
	epoll_ctl(l->ep, EPOLL_CTL_ADD, l->lfd, &ev);
	ev.data.ptr = &l->efd;
	epoll_ctl(l->ep, EPOLL_CTL_ADD, l->efd, &ev);
	return IOTCA_OK;
}

static void
loop_free(edge_loop *l)
{
	edge_msg *m, *next;

	if (l == NULL)
		return;
	for (m = l->mhead; m != NULL; m = next) {
		next = m->next;
		edge_msg_free(m);
	}
	if (l->lfd >= 0)
		close(l->lfd);
	if (l->efd >= 0)
		close(l->efd);
	if (l->ep >= 0)
		close(l->ep);
	free(l->slots);
	free(l->freelist);
	free(l->again);
	free(l->rbuf);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

iotca_err
edge_loops_start(edge *e, iotca_errbuf *eb)
{
	unsigned i;
	int port = 0;
	iotca_err rc;

	if ((e->loops = calloc(e->nloops, sizeof(*e->loops))) == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	for (i = 0; i < e->nloops; i++)
		if ((rc = loop_create(e, i, &port, &e->loops[i], eb)) !=
		    IOTCA_OK)
			return rc;
	e->port = port;
	for (i = 0; i < e->nloops; i++) {
		if (pthread_create(&e->loops[i]->thread, NULL, loop_main,
		                   e->loops[i]) != 0)
			return iotca_errbuf_set(eb, IOTCA_EINTERNAL,
			                        "cannot start a loop thread");
		e->loops[i]->started = 1;
	}
	return IOTCA_OK;
}

void
edge_loops_stop(edge *e)
{
	unsigned i;
	uint64_t one = 1;

	for (i = 0; e->loops != NULL && i < e->nloops; i++) {
		edge_loop *l = e->loops[i];

		if (l == NULL || !l->started)
			continue;
		atomic_store(&l->stop, 1);
		if (write(l->efd, &one, sizeof(one)) < 0) {
			/* full: it is awake */
		}
		pthread_join(l->thread, NULL);
		l->started = 0;
	}
}

void
edge_loops_free(edge *e)
{
	unsigned i;

	for (i = 0; e->loops != NULL && i < e->nloops; i++)
		loop_free(e->loops[i]);
	free(e->loops);
	e->loops = NULL;
}

SSL_CTX *
edge_tls_ctx_get(edge *e)
{
	SSL_CTX *ctx;

	pthread_mutex_lock(&e->ctx_mu);
	ctx = e->ctx;
	if (ctx != NULL)
		SSL_CTX_up_ref(ctx);
	pthread_mutex_unlock(&e->ctx_mu);
	return ctx;
}

void
edge_tls_swap(edge *e, SSL_CTX *ctx)
{
	SSL_CTX *old;

	pthread_mutex_lock(&e->ctx_mu);
	old = e->ctx;
	e->ctx = ctx;
	pthread_mutex_unlock(&e->ctx_mu);
	SSL_CTX_free(old); /* connections keep their own references */
}

iotca_err
edge_tls_load(edge *e, SSL_CTX **out, iotca_errbuf *eb)
{
	return edge_tls_ctx_create(&e->o, edge_verify_cb, e, out, eb);
}
