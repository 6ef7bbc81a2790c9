/*
 * rpc_load.h - closed-loop gRPC load: keeps `concurrency` unary calls in
 * flight for a while and reports throughput, latency percentiles and, when
 * given the server's pid, the server's CPU time per call (from /proc, so
 * the load generator's own cost is left out).
 */
#ifndef IOTCA_RPC_LOAD_H
#define IOTCA_RPC_LOAD_H

#include <sys/types.h>

#include "rpc/rpc.h"

typedef struct rpc_load_opts {
	iotca_rpc_client *client;
	const ProtobufCServiceDescriptor *svc;
	const char *method;
	const ProtobufCMessage *req;
	unsigned concurrency; /* calls in flight */
	double seconds;       /* measured period */
	double warmup_seconds;
	pid_t server_pid; /* 0: no CPU figure */
} rpc_load_opts;

typedef struct rpc_load_result {
	unsigned long calls;  /* completed OK in the measured period */
	unsigned long errors; /* failed in the measured period */
	double seconds;
	double calls_per_s;
	double p50_ms, p99_ms;
	double server_cpu_us_per_call; /* -1 when unknown */
	char first_error[256];
} rpc_load_result;

/* Runs the load; 0 on success, -1 if it could not run at all. */
int rpc_load_run(const rpc_load_opts *o, rpc_load_result *out);

/* Prints one result line: label calls/s p50 p99 cpu. */
void rpc_load_print(const char *label, const rpc_load_result *r);

#endif
