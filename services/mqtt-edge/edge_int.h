/*
 * edge_int.h - the loop and connection structures, shared by loop.c and
 * session.c. A connection and everything in it belongs to its loop's
 * thread; nothing here is locked except the loop's mailbox (mu).
 */
#ifndef IOTCA_EDGE_INT_H
#define IOTCA_EDGE_INT_H

#include <sys/socket.h>

#include "edge.h"
#include "iotca/v1/device_message.pb-c.h"

typedef enum conn_state {
	CS_HANDSHAKE, /* TLS handshake, maybe paused in the verify callback */
	CS_VERIFY,    /* resumed session: its certificate is being checked */
	CS_CONNECT,   /* TLS up: waiting for CONNECT and the device lookup */
	CS_SESSION,   /* CONNACK 0 sent */
} conn_state;

/* A QoS 1 downstream PUBLISH waiting for the device's PUBACK. */
typedef struct edge_inflight {
	uint16_t packet_id;
	int64_t sent_ms;
	uint8_t *pkt; /* the encoded PUBLISH, resent with DUP set */
	size_t len;
} edge_inflight;

struct edge_conn {
	uint64_t cid; /* see EDGE_CONN_LOOP */
	int fd;
	edge_loop *loop;
	SSL *ssl;
	conn_state state;
	uint32_t events;     /* epoll interest registered */
	int ssl_wants_write; /* retry the write on EPOLLOUT */
	int dead;            /* the socket failed: close */
	int closing;         /* flushing, then close with close_reason */
	edge_reason close_reason;
	int64_t deadline_ms; /* handshake, CONNECT or closing deadline */
	char peer[56];
	/* verification (handshake) */
	int paused;    /* the handshake job waits in the callback */
	int abort_job; /* resume it only to fail */
	const unsigned char *want_der; /* issuer DN the callback wants */
	size_t want_len;
	edge_iss *iss;  /* an issuer answer handed in */
	int iss_failed; /* the issuer lookup failed */
	int verified;
	edge_reason fail_reason;
	/* who it is */
	edge_ident ident;
	int dev_state; /* 0 none, 1 asked, 2 answered */
	int dev_failed;
	edge_dev dev;
	/* MQTT */
	iotca_mqtt_decoder *dec;
	iotca_buf out;  /* encoded packets not yet taken by SSL_write */
	iotca_buf pend; /* bytes behind CONNECT, handled after CONNACK */
	int have_connect;
	uint16_t keepalive_s;
	int64_t last_rx_ms;
	char *client_id;
	char *will_topic;
	uint8_t *will_msg;
	size_t will_len;
	uint8_t will_qos;
	int rechecking; /* a session's device is being asked again */
	char *subs[EDGE_SUB_MAX];
	uint8_t sub_qos[EDGE_SUB_MAX];
	size_t nsubs;
	unsigned up_pending; /* QoS 1/2 PUBLISHes not yet handed off */
	uint16_t *q2_ids;    /* QoS 2 ids handed off, awaiting PUBREL */
	size_t nq2;
	edge_inflight *inflight;
	size_t ninflight;
	uint16_t next_pid;
	struct edge_conn *prev, *next; /* the loop's list */
};

struct edge_loop {
	edge *e;
	unsigned index;
	pthread_t thread;
	int started;
	atomic_int stop;
	int ep, lfd, efd;
	char *rbuf;
	/* connections */
	edge_conn *conns;
	edge_conn **slots;
	uint32_t nslots, capslots;
	uint32_t *freelist;
	uint32_t nfree;
	uint32_t gen;
	uint64_t *again; /* conn ids to read once more (loop_read_again) */
	size_t nagain, capagain;
	/* mailbox */
	pthread_mutex_t mu;
	edge_msg *mhead, *mtail;
	int closed; /* no more messages are taken */
};

/* loop.c */
void edge_conn_interest(edge_conn *c);
int edge_conn_flush(edge_conn *c);
void edge_conn_close(edge_conn *c, edge_reason reason);
void edge_conn_close_after_flush(edge_conn *c, edge_reason reason);
void edge_loops_free(edge *e);
iotca_err edge_tls_load(edge *e, SSL_CTX **out, iotca_errbuf *eb);

/* session.c */
/* Starts the session's device lookup; -1 if the connection was closed. */
int edge_session_tls_ready(edge_conn *c);
/* Feeds bytes read; -1 if the connection was closed. */
int edge_session_input(edge_conn *c, const uint8_t *p, size_t n);
void edge_session_msg(edge_conn *c, edge_msg *m);
void edge_session_issuer_done(edge_conn *c);
void edge_session_recheck(edge_conn *c, const edge_msg *m);
void edge_session_tick(edge_conn *c, int64_t now);
void edge_session_end(edge_conn *c, edge_reason reason);

/* auth.c: the cached CAs for an issuer, without starting a lookup. */
edge_verdict edge_auth_issuer_peek(edge_auth *a, const uint8_t *der, size_t len,
                                   edge_iss **out);

/* main.c */
int edge_parse_hostport(const char *s, int port_override,
                        struct sockaddr_storage *ss, socklen_t *sl);

#endif /* IOTCA_EDGE_INT_H */
