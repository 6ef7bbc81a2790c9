/*
 * etcd_proc.h - a real, throwaway etcd for one test binary.
 *
 *   etcd_proc *p;
 *   if (etcd_proc_start(&p, NULL) != 0) return 1;   // prints why
 *   ... iotca_etcd_opts o = {.endpoints = etcd_proc_endpoint(p)}; ...
 *   etcd_proc_destroy(p);                            // stops, removes data
 *
 * etcd listens on free loopback ports (picked by binding port 0; a start
 * that loses a port race is retried with new ports, up to 5 times) and keeps
 * its data and its log (etcd.log) in a fresh directory under $TMPDIR or
 * /tmp. The child gets SIGKILL when the thread that started it dies, so a
 * crashed or killed test leaves no etcd behind; call these functions from
 * the main thread. Not thread-safe.
 */
#ifndef IOTCA_TEST_ETCD_PROC_H
#define IOTCA_TEST_ETCD_PROC_H

typedef struct etcd_proc etcd_proc;

/* Starts etcd and waits (20 s at most) until /health says true.
 * extra_args: NULL-terminated extra etcd flags ("--max-txn-ops", "1024",
 * NULL), or NULL. Returns 0, or -1 after printing why (with etcd's log). */
int etcd_proc_start(etcd_proc **out, const char *const *extra_args);

/* "http://127.0.0.1:PORT", the client URL. */
const char *etcd_proc_endpoint(const etcd_proc *p);

/* The directory holding the data dir and etcd.log. */
const char *etcd_proc_dir(const etcd_proc *p);

/* Whether the etcd process is running. */
int etcd_proc_running(const etcd_proc *p);

/* SIGTERM, then SIGKILL after 5 s; keeps the data. 0 or -1. */
int etcd_proc_stop(etcd_proc *p);

/* Starts etcd again on the same ports and data (stopping it first if it
 * runs) and waits until it is healthy. 0 or -1 after printing why. */
int etcd_proc_restart(etcd_proc *p);

/* Stops etcd if it runs and removes its directory. NULL is allowed. */
void etcd_proc_destroy(etcd_proc *p);

/* A loopback TCP port that nothing listened on a moment ago (for tests of
 * unreachable endpoints). -1 on error. */
int etcd_proc_free_port(void);

#endif /* IOTCA_TEST_ETCD_PROC_H */
