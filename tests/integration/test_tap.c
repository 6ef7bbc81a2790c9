/*
 * test_tap.c - tools/tap: iotca-tap run as a child process on free
 * loopback ports, with this program as the edge's side on NNG directly
 * (there is no Python NNG binding here): it PUSH-dials `iotca-tap listen`
 * and checks the JSON lines, and SUB-dials `iotca-tap send` and checks the
 * exact body bytes against its own packing. Also: timeouts and exit
 * statuses, SIGTERM, every argument check, --help.
 *
 * IOTCA_TAP names the binary (set by tests/integration/tap.cmake).
 * Children get SIGKILL if this process dies.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/pubsub0/sub.h>

#include "buf/buf.h"
#include "etcd_proc.h" /* etcd_proc_free_port */
#include "iotca/v1/device_message.pb-c.h"
#include "test.h"

#define PK    "a1B2c3D4e5F"
#define DN    "sensor-17"
#define TOPIC "/" PK "/" DN "/user/get"

static const char *tap_path;

/* ------------------------------------------------ child processes */

typedef struct tap_proc {
	pid_t pid;
	int out, err; /* read ends of its stdout and stderr */
} tap_proc;

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Starts iotca-tap with args (NULL-terminated, without argv[0]). */
static int
tap_start(tap_proc *p, const char *const *args)
{
	const char *argv[32];
	int o[2], e[2];
	size_t i;

	argv[0] = tap_path;
	for (i = 0; args[i] != NULL && i < 30; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	if (pipe2(o, O_CLOEXEC) != 0)
		return -1;
	if (pipe2(e, O_CLOEXEC) != 0) {
		close(o[0]);
		close(o[1]);
		return -1;
	}
	if ((p->pid = fork()) == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(o[1], 1);
		dup2(e[1], 2);
		execv(tap_path, (char *const *)argv);
		_exit(127);
	}
	close(o[1]);
	close(e[1]);
	p->out = o[0];
	p->err = e[0];
	if (p->pid < 0) {
		close(o[0]);
		close(e[0]);
		return -1;
	}
	return 0;
}

/*
 * Reads stdout and stderr to EOF and reaps the child, which must be done
 * within timeout_ms (else it gets SIGKILL). Returns its exit status, or -1
 * when it was killed or did not exit. *out and *err are malloc'd.
 */
static int
tap_finish(tap_proc *p, int timeout_ms, char **out, char **err)
{
	int64_t deadline = now_ms() + timeout_ms;
	iotca_buf b[2];
	struct pollfd pfd[2];
	int open = 2, status = 0, i;
	char chunk[4096];

	iotca_buf_init(&b[0], 1u << 20);
	iotca_buf_init(&b[1], 1u << 20);
	pfd[0] = (struct pollfd){.fd = p->out, .events = POLLIN};
	pfd[1] = (struct pollfd){.fd = p->err, .events = POLLIN};
	while (open > 0 && now_ms() < deadline) {
		if (poll(pfd, 2, (int)(deadline - now_ms())) <= 0)
			continue;
		for (i = 0; i < 2; i++) {
			ssize_t n;

			if (pfd[i].fd < 0 || pfd[i].revents == 0)
				continue;
			n = read(pfd[i].fd, chunk, sizeof(chunk));
			if (n > 0) {
				iotca_buf_append(&b[i], chunk, (size_t)n);
			} else if (n == 0 || errno != EINTR) {
				pfd[i].fd = -1;
				open--;
			}
		}
	}
	if (open > 0)
		kill(p->pid, SIGKILL);
	waitpid(p->pid, &status, 0);
	close(p->out);
	close(p->err);
	iotca_buf_append(&b[0], "", 0);
	iotca_buf_append(&b[1], "", 0);
	*out = iotca_buf_take(&b[0], NULL);
	*err = iotca_buf_take(&b[1], NULL);
	if (open > 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* Runs iotca-tap to its end (10 s at most). */
static int
tap_run(const char *const *args, char **out, char **err)
{
	tap_proc p;

	if (tap_start(&p, args) != 0) {
		*out = strdup("");
		*err = strdup("cannot start");
		return -1;
	}
	return tap_finish(&p, 10000, out, err);
}

/* "tcp://127.0.0.1:PORT" on a port nothing listened on a moment ago. */
static void
free_url(char *url, size_t n)
{
	snprintf(url, n, "tcp://127.0.0.1:%d", etcd_proc_free_port());
}

/* ------------------------------------------------ listen */

/* PUSH-dials url (in the background, retrying until the tap listens). */
static int
push_open(const char *url, nng_socket *s)
{
	if (nng_push0_open(s) != 0)
		return -1;
	nng_socket_set_ms(*s, NNG_OPT_SENDTIMEO, 10000);
	nng_socket_set_ms(*s, NNG_OPT_RECONNMINT, 20);
	if (nng_dial(*s, url, NULL, NNG_FLAG_NONBLOCK) != 0) {
		nng_close(*s);
		return -1;
	}
	return 0;
}

static int
push_message(nng_socket s, const Iotca__V1__DeviceMessage *m)
{
	size_t n = iotca__v1__device_message__get_packed_size(m);
	uint8_t *buf = malloc(n + 1);
	int rv;

	if (buf == NULL)
		return -1;
	iotca__v1__device_message__pack(m, buf);
	rv = nng_send(s, buf, n, 0);
	free(buf);
	return rv;
}

static const char publish_line[] =
    "{\"kind\":\"PUBLISH\",\"edge_id\":\"edge-0\",\"account_id\":\"acc-1\","
    "\"product_key\":\"a1B2c3D4e5F\",\"device_name\":\"sensor-17\","
    "\"client_id\":\"anything|securemode=2|\","
    "\"topic\":\"/a1B2c3D4e5F/sensor-17/user/update\","
    "\"payload\":\"{\\\"t\\\":21.5,\\\"u\\\":\\\"\xc2\xb0"
    "C\\\"}\\n\",\"qos\":1,\"message_id\":7,\"time_unix_ms\":1764201600123,"
    "\"reason\":\"\",\"peer_address\":\"10.0.0.9:51234\",\"ca_id\":\"ca-1\","
    "\"cert_sn\":\"A1B2\"}";

/* What the test pushes: every field; garbage; a binary payload; the
 * largest message_id; an unknown kind with a string that is not UTF-8. */
static void
push_all(nng_socket s)
{
	Iotca__V1__DeviceMessage m = IOTCA__V1__DEVICE_MESSAGE__INIT;
	static uint8_t bin[] = {0x00, 0xff, 0x10};
	static const char text[] = "{\"t\":21.5,\"u\":\"\xc2\xb0"
	                           "C\"}\n";

	m.kind = IOTCA__V1__DEVICE_MESSAGE_KIND__DEVICE_MESSAGE_KIND_PUBLISH;
	m.edge_id = "edge-0";
	m.account_id = "acc-1";
	m.product_key = PK;
	m.device_name = DN;
	m.client_id = "anything|securemode=2|";
	m.topic = "/" PK "/" DN "/user/update";
	m.payload.data = (uint8_t *)text;
	m.payload.len = strlen(text);
	m.qos = 1;
	m.message_id = 7;
	m.time_unix_ms = 1764201600123;
	m.peer_address = "10.0.0.9:51234";
	m.ca_id = "ca-1";
	m.cert_sn = "A1B2";
	CHECK_EQ_INT(push_message(s, &m), 0);
	CHECK_EQ_INT(nng_send(s, "\xff\xff\xff", 3, 0), 0);
	m.payload.data = bin;
	m.payload.len = sizeof(bin);
	m.qos = 0;
	m.message_id = 8;
	CHECK_EQ_INT(push_message(s, &m), 0);
	m = (Iotca__V1__DeviceMessage)IOTCA__V1__DEVICE_MESSAGE__INIT;
	m.kind =
	    IOTCA__V1__DEVICE_MESSAGE_KIND__DEVICE_MESSAGE_KIND_DISCONNECTED;
	m.reason = "keepalive_timeout";
	m.message_id = UINT64_MAX;
	m.time_unix_ms = -1;
	CHECK_EQ_INT(push_message(s, &m), 0);
	m = (Iotca__V1__DeviceMessage)IOTCA__V1__DEVICE_MESSAGE__INIT;
	m.kind = (Iotca__V1__DeviceMessageKind)9;
	m.edge_id = "ed\xffge";
	CHECK_EQ_INT(push_message(s, &m), 0);
}

/* The n-th line (0-based) of text, parsed; NULL when there is none. */
static json_t *
json_line(const char *text, int n)
{
	const char *p = text, *nl;
	char *line;
	json_t *j;

	while (n-- > 0 && p != NULL && (p = strchr(p, '\n')) != NULL)
		p++;
	if (p == NULL || *p == '\0' || (nl = strchr(p, '\n')) == NULL)
		return NULL;
	if ((line = strndup(p, (size_t)(nl - p))) == NULL)
		return NULL;
	j = json_loads(line, 0, NULL);
	free(line);
	return j;
}

static void
test_listen_lines(void)
{
	char url[64], *out, *err;
	const char *args[] = {"listen",       url,     "--count", "4",
	                      "--timeout-ms", "15000", NULL};
	tap_proc p;
	nng_socket s;
	json_t *j;

	free_url(url, sizeof(url));
	REQUIRE(tap_start(&p, args) == 0);
	REQUIRE(push_open(url, &s) == 0);
	push_all(s);
	CHECK_EQ_INT(tap_finish(&p, 15000, &out, &err), 0);
	nng_close(s);
	/* The first line exactly: field order, spelling, escaping. */
	CHECK(strncmp(out, publish_line, strlen(publish_line)) == 0 &&
	      out[strlen(publish_line)] == '\n');
	if (strncmp(out, publish_line, strlen(publish_line)) != 0)
		fprintf(stderr, "got:  %s\nwant: %s\n", out, publish_line);
	CHECK(json_object_size(j = json_line(out, 0)) == 15);
	json_decref(j);
	j = json_line(out, 1);
	CHECK_EQ_STR(json_string_value(json_object_get(j, "payload_b64")),
	             "AP8Q");
	CHECK(json_object_get(j, "payload") == NULL);
	CHECK_EQ_INT(json_integer_value(json_object_get(j, "message_id")), 8);
	CHECK_EQ_INT(json_integer_value(json_object_get(j, "qos")), 0);
	json_decref(j);
	j = json_line(out, 2);
	CHECK_EQ_STR(json_string_value(json_object_get(j, "kind")),
	             "DISCONNECTED");
	CHECK_EQ_STR(json_string_value(json_object_get(j, "reason")),
	             "keepalive_timeout");
	CHECK_EQ_STR(json_string_value(json_object_get(j, "message_id")),
	             "18446744073709551615");
	CHECK_EQ_INT(json_integer_value(json_object_get(j, "time_unix_ms")),
	             -1);
	CHECK_EQ_STR(json_string_value(json_object_get(j, "payload")), "");
	CHECK_EQ_STR(json_string_value(json_object_get(j, "product_key")), "");
	json_decref(j);
	j = json_line(out, 3);
	CHECK_EQ_INT(json_integer_value(json_object_get(j, "kind")), 9);
	CHECK_EQ_STR(json_string_value(json_object_get(j, "edge_id")),
	             "ed\xef\xbf\xbdge");
	json_decref(j);
	CHECK(json_line(out, 4) == NULL);
	CHECK_CONTAINS(err, "a message of 3 bytes is not a packed "
	                    "DeviceMessage; skipped");
	free(out);
	free(err);
}

/* --count with --timeout-ms: fewer messages is exit 1 after the time. */
static void
test_listen_timeout(void)
{
	char url[64], *out, *err;
	const char *args[] = {"listen", url, "--timeout-ms", "800", "--count",
	                      "2",      NULL};
	Iotca__V1__DeviceMessage m = IOTCA__V1__DEVICE_MESSAGE__INIT;
	int64_t t0 = now_ms(), took;
	tap_proc p;
	nng_socket s;

	free_url(url, sizeof(url));
	REQUIRE(tap_start(&p, args) == 0);
	REQUIRE(push_open(url, &s) == 0);
	m.kind = IOTCA__V1__DEVICE_MESSAGE_KIND__DEVICE_MESSAGE_KIND_CONNECTED;
	m.edge_id = "edge-1";
	CHECK_EQ_INT(push_message(s, &m), 0);
	CHECK_EQ_INT(tap_finish(&p, 10000, &out, &err), 1);
	took = now_ms() - t0;
	nng_close(s);
	CHECK(took >= 800 && took < 5000);
	CHECK_CONTAINS(out, "{\"kind\":\"CONNECTED\",\"edge_id\":\"edge-1\",");
	CHECK(json_line(out, 1) == NULL);
	CHECK_CONTAINS(err, "stopped with 1 of 2 messages");
	free(out);
	free(err);
}

/* No --count: the timeout or SIGTERM end it with exit 0. */
static void
test_listen_no_count(void)
{
	char url[64], *out, *err;
	const char *timed[] = {"listen", url, "--timeout-ms", "300", NULL};
	const char *open_ended[] = {"listen", url, NULL};
	int64_t t0;
	tap_proc p;

	free_url(url, sizeof(url));
	CHECK_EQ_INT(tap_run(timed, &out, &err), 0);
	CHECK_EQ_STR(out, "");
	free(out);
	free(err);
	REQUIRE(tap_start(&p, open_ended) == 0);
	usleep(300000);
	t0 = now_ms();
	kill(p.pid, SIGTERM);
	CHECK_EQ_INT(tap_finish(&p, 5000, &out, &err), 0);
	CHECK(now_ms() - t0 < 1000);
	CHECK_CONTAINS(err, "listening on tcp://127.0.0.1:");
	free(out);
	free(err);
}

/* The address is taken: exit 1 and why. */
static void
test_listen_busy(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	char url[64], *out, *err;
	const char *args[] = {"listen", url, "--timeout-ms", "300", NULL};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	REQUIRE(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	      listen(fd, 1) == 0 &&
	      getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", ntohs(sa.sin_port));
	CHECK_EQ_INT(tap_run(args, &out, &err), 1);
	CHECK_CONTAINS(err, "cannot listen on tcp://127.0.0.1:");
	free(out);
	free(err);
	close(fd);
}

/* ------------------------------------------------ send */

/* SUB-dials url subscribed to prefix (in the background). */
static int
sub_open(const char *url, const char *prefix, nng_socket *s)
{
	if (nng_sub0_open(s) != 0)
		return -1;
	nng_socket_set(*s, NNG_OPT_SUB_SUBSCRIBE, prefix, strlen(prefix));
	nng_socket_set_ms(*s, NNG_OPT_RECVTIMEO, 10000);
	nng_socket_set_ms(*s, NNG_OPT_RECONNMINT, 20);
	if (nng_dial(*s, url, NULL, NNG_FLAG_NONBLOCK) != 0) {
		nng_close(*s);
		return -1;
	}
	return 0;
}

/* The body as the contract spells it, packed here independently. */
static void
expected_body(iotca_buf *b, const char *topic, uint32_t qos,
              const uint8_t *payload, size_t len)
{
	Iotca__V1__DownstreamMessage m = IOTCA__V1__DOWNSTREAM_MESSAGE__INIT;
	uint8_t packed[1024];

	m.product_key = PK;
	m.device_name = DN;
	m.topic = (char *)topic;
	m.qos = qos;
	m.payload.data = (uint8_t *)payload;
	m.payload.len = len;
	iotca_buf_init(b, 4096);
	iotca_buf_append_str(b, PK "/" DN "\n");
	if (iotca__v1__downstream_message__get_packed_size(&m) <=
	    sizeof(packed))
		iotca_buf_append(
		    b, packed, iotca__v1__downstream_message__pack(&m, packed));
}

/* Receives one message and compares it byte for byte. */
static void
check_received(nng_socket s, const iotca_buf *want)
{
	Iotca__V1__DownstreamMessage *m;
	size_t n = 0, plen = strlen(PK "/" DN "\n");
	char *got = NULL;

	REQUIRE(nng_recv(s, &got, &n, NNG_FLAG_ALLOC) == 0);
	CHECK_EQ_INT(n, want->len);
	CHECK(n == want->len && memcmp(got, want->data, n) == 0);
	m = n > plen ? iotca__v1__downstream_message__unpack(
	                   NULL, n - plen, (uint8_t *)got + plen)
	             : NULL;
	CHECK(m != NULL);
	if (m != NULL) {
		CHECK_EQ_STR(m->product_key, PK);
		CHECK_EQ_STR(m->device_name, DN);
		iotca__v1__downstream_message__free_unpacked(m, NULL);
	}
	nng_free(got, n);
}

static void
test_send_repeat(void)
{
	static const char payload[] = "h\xc3\xa9llo {\"on\":true}";
	char url[64], *out, *err;
	const char *args[] = {"send",      url,     "--pk",        PK,
	                      "--dn",      DN,      "--topic",     TOPIC,
	                      "--qos",     "1",     "--payload",   payload,
	                      "--count",   "3",     "--repeat-ms", "50",
	                      "--wait-ms", "10000", NULL};
	iotca_buf want;
	tap_proc p;
	nng_socket s;
	int i;

	free_url(url, sizeof(url));
	expected_body(&want, TOPIC, 1, (const uint8_t *)payload,
	              strlen(payload));
	REQUIRE(tap_start(&p, args) == 0);
	/* As an edge subscribes for one device: the prefix with its '\n'. */
	if (sub_open(url, PK "/" DN "\n", &s) == 0) {
		for (i = 0; i < 3; i++)
			check_received(s, &want);
		nng_close(s);
	} else {
		CHECK(0);
	}
	CHECK_EQ_INT(tap_finish(&p, 10000, &out, &err), 0);
	CHECK_CONTAINS(err, "sent message 3 (");
	CHECK_CONTAINS(err, "to 1 subscriber(s)");
	CHECK_EQ_STR(out, "");
	iotca_buf_free(&want);
	free(out);
	free(err);
}

/* A binary payload from a file, default QoS 0, an /ext/ topic. */
static void
test_send_file(void)
{
	static const uint8_t bin[] = {0x00, 0x01, 0xfe, 0xff, '\n', 0x00};
	char url[64], path[] = "/tmp/test_tap_payload_XXXXXX", *out, *err;
	const char *args[] = {"send",
	                      url,
	                      "--pk",
	                      PK,
	                      "--dn",
	                      DN,
	                      "--topic",
	                      "/ext/ntp/" PK "/" DN "/response",
	                      "--payload-file",
	                      path,
	                      "--wait-ms",
	                      "10000",
	                      NULL};
	iotca_buf want;
	tap_proc p;
	nng_socket s;
	int fd = mkstemp(path);

	REQUIRE(fd >= 0);
	CHECK(write(fd, bin, sizeof(bin)) == (ssize_t)sizeof(bin));
	close(fd);
	free_url(url, sizeof(url));
	expected_body(&want, "/ext/ntp/" PK "/" DN "/response", 0, bin,
	              sizeof(bin));
	REQUIRE(tap_start(&p, args) == 0);
	if (sub_open(url, "", &s) == 0) {
		check_received(s, &want);
		nng_close(s);
	} else {
		CHECK(0);
	}
	CHECK_EQ_INT(tap_finish(&p, 10000, &out, &err), 0);
	unlink(path);
	iotca_buf_free(&want);
	free(out);
	free(err);
}

/* No subscriber within --wait-ms: exit 1. */
static void
test_send_no_subscriber(void)
{
	char url[64], *out, *err;
	const char *args[] = {"send",    url,   "--pk",      PK,    "--dn", DN,
	                      "--topic", TOPIC, "--wait-ms", "300", NULL};

	free_url(url, sizeof(url));
	CHECK_EQ_INT(tap_run(args, &out, &err), 1);
	CHECK_CONTAINS(err, "no subscriber connected to");
	free(out);
	free(err);
}

/* One send command line that must be refused with exit 2 and a message
 * containing why. */
static void
check_refused(const char *pk, const char *dn, const char *topic,
              const char *extra, const char *extra_value, const char *why)
{
	const char *args[16];
	char *out, *err;
	int n = 0;

	args[n++] = "send";
	args[n++] = "tcp://127.0.0.1:1";
	if (pk != NULL) {
		args[n++] = "--pk";
		args[n++] = pk;
	}
	if (dn != NULL) {
		args[n++] = "--dn";
		args[n++] = dn;
	}
	if (topic != NULL) {
		args[n++] = "--topic";
		args[n++] = topic;
	}
	if (extra != NULL)
		args[n++] = extra;
	if (extra_value != NULL)
		args[n++] = extra_value;
	args[n] = NULL;
	CHECK_EQ_INT(tap_run(args, &out, &err), 2);
	CHECK_CONTAINS(err, why);
	CHECK_CONTAINS(err, "see 'iotca-tap send --help'");
	free(out);
	free(err);
}

static void
test_send_refused(void)
{
	check_refused("a1B2c3D4e5", DN, TOPIC, NULL, NULL,
	              "--pk 'a1B2c3D4e5' is not a ProductKey");
	check_refused("a1B2c3D4e5_", DN, TOPIC, NULL, NULL,
	              "not all letters and digits");
	check_refused(PK, "a/b/c", TOPIC, NULL, NULL,
	              "--dn 'a/b/c' is not a DeviceName");
	check_refused(PK, "abc", TOPIC, NULL, NULL, "is not a DeviceName");
	check_refused(PK, DN, "/other/x", NULL, NULL,
	              "outside the device's topic space");
	check_refused(PK, DN, "/" PK "/" DN "/", NULL, NULL,
	              "outside the device's topic space");
	check_refused(PK, DN, "/" PK "/" DN "0/x", NULL, NULL,
	              "outside the device's topic space");
	check_refused(PK, DN, "/ext", NULL, NULL,
	              "outside the device's topic space");
	check_refused(PK, DN, "/" PK "/" DN "/+", NULL, NULL,
	              "is not an MQTT topic name");
	check_refused(PK, DN, TOPIC, "--qos", "2", "--qos '2'");
	check_refused(PK, DN, TOPIC, "--count", "0", "--count '0'");
	check_refused(PK, DN, TOPIC, "--repeat-ms", "-5", "--repeat-ms");
	check_refused(PK, DN, TOPIC, "--bogus", NULL, "unknown option");
	check_refused(PK, DN, TOPIC, "--qos", NULL, "--qos needs a value");
	check_refused(PK, DN, NULL, NULL, NULL, "are required");
	check_refused(PK, DN, TOPIC, "tcp://127.0.0.1:2", NULL,
	              "exactly one URL");
	check_refused(PK, DN, TOPIC, "--payload-file=/dev/null", "--payload=x",
	              "not both");
}

static void
test_send_missing_file(void)
{
	const char *args[] = {"send",
	                      "tcp://127.0.0.1:1",
	                      "--pk",
	                      PK,
	                      "--dn",
	                      DN,
	                      "--topic",
	                      TOPIC,
	                      "--payload-file",
	                      "/nonexistent/payload",
	                      NULL};
	char *out, *err;

	CHECK_EQ_INT(tap_run(args, &out, &err), 1);
	CHECK_CONTAINS(err, "--payload-file /nonexistent/payload: No such "
	                    "file");
	free(out);
	free(err);
}

/* ------------------------------------------------ help */

static void
check_run(const char *const *args, int status, const char *in_out,
          const char *in_err)
{
	char *out, *err;

	CHECK_EQ_INT(tap_run(args, &out, &err), status);
	if (in_out != NULL)
		CHECK_CONTAINS(out, in_out);
	if (in_err != NULL)
		CHECK_CONTAINS(err, in_err);
	free(out);
	free(err);
}

static void
test_help(void)
{
	const char *top[] = {"--help", NULL};
	const char *listen_help[] = {"listen", "--help", NULL};
	const char *send_help[] = {"send", "-h", NULL};
	const char *none[] = {NULL};
	const char *bogus[] = {"bogus", NULL};
	const char *no_url[] = {"listen", NULL};
	const char *bad_url[] = {"listen", "127.0.0.1:5555", NULL};
	const char *bad_count[] = {"listen", "tcp://127.0.0.1:1", "--count",
	                           "x", NULL};

	check_run(top, 0, "usage: iotca-tap listen URL", NULL);
	check_run(listen_help, 0, "--timeout-ms MS", NULL);
	check_run(send_help, 0, "--payload-file F", NULL);
	check_run(none, 2, NULL, "usage: iotca-tap listen URL");
	check_run(bogus, 2, NULL, "unknown verb 'bogus'");
	check_run(no_url, 2, NULL, "give exactly one URL");
	check_run(bad_url, 2, NULL, "is not an NNG address");
	check_run(bad_count, 2, NULL, "--count 'x'");
}

int
main(void)
{
	if ((tap_path = getenv("IOTCA_TAP")) == NULL ||
	    access(tap_path, X_OK) != 0) {
		fprintf(stderr, "set IOTCA_TAP to the iotca-tap binary\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	RUN(test_listen_lines);
	RUN(test_listen_timeout);
	RUN(test_listen_no_count);
	RUN(test_listen_busy);
	RUN(test_send_repeat);
	RUN(test_send_file);
	RUN(test_send_no_subscriber);
	RUN(test_send_refused);
	RUN(test_send_missing_file);
	RUN(test_help);
	return test_summary();
}
