/*
 * rpc_load.c - closed-loop load over iotca_rpc_client's async calls.
 */
#include "rpc_load.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOAD_MAX_SAMPLES (4u << 20)

typedef struct load_state {
	const rpc_load_opts *o;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	double start, measure_from, stop_at;
	unsigned in_flight;
	unsigned long ok, errors;
	double *lat_ms;
	size_t nlat;
	char first_error[256];
} load_state;

typedef struct load_call {
	load_state *st;
	double t0;
} load_call;

static double
load_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int load_issue(load_state *st);

static void
load_done(iotca_err rc, ProtobufCMessage *resp, const iotca_errbuf *eb,
          void *arg)
{
	load_call *lc = arg;
	load_state *st = lc->st;
	double now = load_now();
	int again;

	if (resp != NULL)
		protobuf_c_message_free_unpacked(resp, NULL);
	pthread_mutex_lock(&st->mu);
	if (lc->t0 >= st->measure_from && now <= st->stop_at) {
		if (rc == IOTCA_OK) {
			st->ok++;
			if (st->nlat < LOAD_MAX_SAMPLES)
				st->lat_ms[st->nlat++] = (now - lc->t0) * 1e3;
		} else {
			st->errors++;
		}
	}
	if (rc != IOTCA_OK && st->first_error[0] == '\0')
		snprintf(st->first_error, sizeof(st->first_error), "%s: %s",
		         iotca_strerror(rc), iotca_errbuf_msg(eb));
	st->in_flight--;
	again = now < st->stop_at;
	pthread_cond_broadcast(&st->cv);
	pthread_mutex_unlock(&st->mu);
	free(lc);
	if (again)
		load_issue(st);
}

static int
load_issue(load_state *st)
{
	load_call *lc = malloc(sizeof(*lc));
	iotca_errbuf eb;

	if (lc == NULL)
		return -1;
	lc->st = st;
	lc->t0 = load_now();
	pthread_mutex_lock(&st->mu);
	st->in_flight++;
	pthread_mutex_unlock(&st->mu);
	if (iotca_rpc_client_call_async(st->o->client, st->o->svc,
	                                st->o->method, st->o->req, 10000,
	                                load_done, lc, &eb) != IOTCA_OK) {
		pthread_mutex_lock(&st->mu);
		st->in_flight--;
		st->errors++;
		pthread_cond_broadcast(&st->cv);
		pthread_mutex_unlock(&st->mu);
		free(lc);
		return -1;
	}
	return 0;
}

/* utime + stime of a process, in microseconds; -1 if unknown. */
static double
load_proc_cpu_us(pid_t pid)
{
	char path[64], buf[2048], *p;
	unsigned long ut, stt;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the ")" that ends the command name: utime is the
	 * 12th, stime the 13th. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	           &ut, &stt) != 2)
		return -1;
	return (double)(ut + stt) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

static int
load_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void
load_finish(load_state *st, double cpu0, double cpu1, rpc_load_result *out)
{
	memset(out, 0, sizeof(*out));
	out->calls = st->ok;
	out->errors = st->errors;
	out->seconds = st->stop_at - st->measure_from;
	out->calls_per_s = (double)st->ok / out->seconds;
	qsort(st->lat_ms, st->nlat, sizeof(double), load_cmp);
	if (st->nlat > 0) {
		out->p50_ms = st->lat_ms[st->nlat / 2];
		out->p99_ms = st->lat_ms[(size_t)((double)st->nlat * 0.99)];
	}
	out->server_cpu_us_per_call = -1;
	if (cpu0 >= 0 && cpu1 >= 0 && st->ok > 0)
		out->server_cpu_us_per_call = (cpu1 - cpu0) / (double)st->ok;
	memcpy(out->first_error, st->first_error, sizeof(out->first_error));
}

int
rpc_load_run(const rpc_load_opts *o, rpc_load_result *out)
{
	load_state st;
	struct timespec nap;
	double cpu0 = -1, cpu1 = -1;
	unsigned i;

	memset(&st, 0, sizeof(st));
	st.o = o;
	if ((st.lat_ms = malloc(LOAD_MAX_SAMPLES * sizeof(double))) == NULL)
		return -1;
	pthread_mutex_init(&st.mu, NULL);
	pthread_cond_init(&st.cv, NULL);
	st.start = load_now();
	st.measure_from = st.start + o->warmup_seconds;
	st.stop_at = st.measure_from + o->seconds;
	for (i = 0; i < o->concurrency; i++)
		load_issue(&st);
	nap.tv_sec = (time_t)o->warmup_seconds;
	nap.tv_nsec = (long)((o->warmup_seconds - (double)nap.tv_sec) * 1e9);
	nanosleep(&nap, NULL);
	if (o->server_pid > 0)
		cpu0 = load_proc_cpu_us(o->server_pid);
	pthread_mutex_lock(&st.mu);
	while (load_now() < st.stop_at || st.in_flight > 0)
		pthread_cond_wait(&st.cv, &st.mu);
	pthread_mutex_unlock(&st.mu);
	if (o->server_pid > 0)
		cpu1 = load_proc_cpu_us(o->server_pid);
	load_finish(&st, cpu0, cpu1, out);
	free(st.lat_ms);
	pthread_mutex_destroy(&st.mu);
	pthread_cond_destroy(&st.cv);
	return 0;
}

void
rpc_load_print(const char *label, const rpc_load_result *r)
{
	printf("%-28s calls/s=%9.0f  p50_ms=%6.3f  p99_ms=%6.3f  "
	       "server_cpu_us/call=",
	       label, r->calls_per_s, r->p50_ms, r->p99_ms);
	if (r->server_cpu_us_per_call >= 0)
		printf("%6.1f", r->server_cpu_us_per_call);
	else
		printf("   n/a");
	printf("  calls=%lu errors=%lu\n", r->calls, r->errors);
	if (r->errors > 0 && r->first_error[0] != '\0')
		printf("  first error: %s\n", r->first_error);
}
