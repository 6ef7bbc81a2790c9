/*
 * etcd_proc.c - start, stop and clean up a throwaway etcd for tests.
 */
#include "etcd_proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROC_START_TRIES 5
#define PROC_HEALTH_MS   20000
#define PROC_STOP_MS     5000
#define PROC_MAX_ARGS    64
#define PROC_LOG_TAIL    4096

struct etcd_proc {
	pid_t pid; /* 0 when not running */
	int client_port;
	int peer_port;
	char root[PATH_MAX - 64]; /* the directory of this etcd */
	char data_dir[PATH_MAX];  /* root/data */
	char log_path[PATH_MAX];  /* root/etcd.log */
	char etcd_path[PATH_MAX]; /* the etcd binary */
	char endpoint[64];
	char peer_url[64];
	char cluster[96];
	const char *argv[PROC_MAX_ARGS];
	char **extra; /* copies of the caller's extra flags */
};

static int64_t
proc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
proc_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Binds 127.0.0.1:0 and returns the socket (the port stays taken until it
 * is closed) or -1. */
static int
proc_bind_any(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

int
etcd_proc_free_port(void)
{
	int port, fd = proc_bind_any(&port);

	if (fd < 0)
		return -1;
	close(fd);
	return port;
}

/* Picks two distinct free ports. */
static int
proc_pick_ports(etcd_proc *p)
{
	int a = proc_bind_any(&p->client_port), b = -1, rc = -1;

	if (a >= 0 && (b = proc_bind_any(&p->peer_port)) >= 0)
		rc = 0;
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	return rc;
}

/* Finds etcd on PATH. */
static int
proc_find_etcd(etcd_proc *p)
{
	const char *path = getenv("PATH");
	const char *s, *e;

	for (s = path ? path : "/usr/bin:/bin"; *s != '\0';
	     s = *e ? e + 1 : e) {
		e = strchr(s, ':');
		if (e == NULL)
			e = s + strlen(s);
		snprintf(p->etcd_path, sizeof(p->etcd_path), "%.*s/etcd",
		         (int)(e - s), s);
		if (e > s && access(p->etcd_path, X_OK) == 0)
			return 0;
	}
	fprintf(stderr, "etcd_proc: no etcd on PATH; install etcd-server "
	                "(Debian) or put the etcd binary on PATH\n");
	return -1;
}

/* Fills argv for the current ports. */
static void
proc_build_argv(etcd_proc *p)
{
	size_t n = 0, i;

	snprintf(p->endpoint, sizeof(p->endpoint), "http://127.0.0.1:%d",
	         p->client_port);
	snprintf(p->peer_url, sizeof(p->peer_url), "http://127.0.0.1:%d",
	         p->peer_port);
	snprintf(p->cluster, sizeof(p->cluster), "t=%s", p->peer_url);
	const char *fixed[] = {p->etcd_path, "--name",
	                       "t",          "--data-dir",
	                       p->data_dir,  "--listen-client-urls",
	                       p->endpoint,  "--advertise-client-urls",
	                       p->endpoint,  "--listen-peer-urls",
	                       p->peer_url,  "--initial-advertise-peer-urls",
	                       p->peer_url,  "--initial-cluster",
	                       p->cluster,   "--logger",
	                       "zap",        "--log-level",
	                       "error"};
	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		p->argv[n++] = fixed[i];
	for (i = 0; p->extra && p->extra[i] && n < PROC_MAX_ARGS - 1; i++)
		p->argv[n++] = p->extra[i];
	p->argv[n] = NULL;
}

static int
proc_spawn(etcd_proc *p)
{
	pid_t parent = getpid(), pid;
	int fd =
	    open(p->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	if (fd < 0) {
		fprintf(stderr, "etcd_proc: cannot open %s: %s\n", p->log_path,
		        strerror(errno));
		return -1;
	}
	if ((pid = fork()) == 0) {
		/* only async-signal-safe calls from here on */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		close_range(3, ~0U, 0);
		execv(p->etcd_path, (char *const *)p->argv);
		_exit(127);
	}
	close(fd);
	if (pid < 0) {
		fprintf(stderr, "etcd_proc: fork: %s\n", strerror(errno));
		return -1;
	}
	p->pid = pid;
	return 0;
}

/* Whether GET /health on the client port says true. */
static int
proc_healthy(const etcd_proc *p)
{
	static const char req[] = "GET /health HTTP/1.0\r\nHost: x\r\n\r\n";
	struct sockaddr_in a = {.sin_family = AF_INET};
	struct timeval tv = {1, 0};
	char buf[2048];
	ssize_t n;
	size_t got = 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok = 0;

	if (fd < 0)
		return 0;
	a.sin_port = htons((uint16_t)p->client_port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) ==
	        (ssize_t)(sizeof(req) - 1)) {
		while (got < sizeof(buf) - 1 &&
		       (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
			got += (size_t)n;
		buf[got] = '\0';
		ok = strstr(buf, "\"health\":\"true\"") != NULL;
	}
	close(fd);
	return ok;
}

/* Prints the end of etcd's log. */
static void
proc_print_log(const etcd_proc *p)
{
	char buf[PROC_LOG_TAIL + 1];
	ssize_t n;
	int fd = open(p->log_path, O_RDONLY | O_CLOEXEC);
	off_t size;

	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	lseek(fd, size > PROC_LOG_TAIL ? size - PROC_LOG_TAIL : 0, SEEK_SET);
	n = read(fd, buf, PROC_LOG_TAIL);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	fprintf(stderr, "---- %s (end) ----\n%s\n---- end of etcd log ----\n",
	        p->log_path, buf);
}

static int
proc_log_says_in_use(const etcd_proc *p)
{
	char buf[PROC_LOG_TAIL + 1];
	ssize_t n;
	int fd = open(p->log_path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	n = read(fd, buf, PROC_LOG_TAIL);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return strstr(buf, "address already in use") != NULL;
}

/* Waits for health. 0 healthy, 1 exited because a port was taken, -1. */
static int
proc_wait_healthy(etcd_proc *p)
{
	int64_t deadline = proc_now_ms() + PROC_HEALTH_MS;
	int status;

	while (proc_now_ms() < deadline) {
		if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
			p->pid = 0;
			if (proc_log_says_in_use(p))
				return 1;
			fprintf(stderr, "etcd_proc: etcd exited (status %d)\n",
			        status);
			proc_print_log(p);
			return -1;
		}
		if (proc_healthy(p))
			return 0;
		proc_sleep_ms(50);
	}
	fprintf(stderr, "etcd_proc: etcd at %s not healthy within %d ms\n",
	        p->endpoint, PROC_HEALTH_MS);
	proc_print_log(p);
	etcd_proc_stop(p);
	return -1;
}

static int
proc_rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static void
proc_rm_rf(const char *path)
{
	nftw(path, proc_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int
proc_make_dirs(etcd_proc *p)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(p->root, sizeof(p->root), "%s/iotca-etcd-XXXXXX",
	         tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(p->root) == NULL) {
		fprintf(stderr, "etcd_proc: mkdtemp %s: %s\n", p->root,
		        strerror(errno));
		return -1;
	}
	snprintf(p->data_dir, sizeof(p->data_dir), "%s/data", p->root);
	snprintf(p->log_path, sizeof(p->log_path), "%s/etcd.log", p->root);
	return 0;
}

static int
proc_copy_extra(etcd_proc *p, const char *const *extra)
{
	size_t n = 0, i;

	while (extra && extra[n])
		n++;
	if ((p->extra = calloc(n + 1, sizeof(char *))) == NULL)
		return -1;
	for (i = 0; i < n; i++)
		if ((p->extra[i] = strdup(extra[i])) == NULL)
			return -1;
	return 0;
}

int
etcd_proc_start(etcd_proc **out, const char *const *extra_args)
{
	etcd_proc *p = calloc(1, sizeof(*p));
	int tries, rc = -1;

	if (p == NULL || proc_copy_extra(p, extra_args) != 0 ||
	    proc_find_etcd(p) != 0 || proc_make_dirs(p) != 0)
		goto out;
	for (tries = 0; tries < PROC_START_TRIES; tries++) {
		proc_rm_rf(p->data_dir);
		if (proc_pick_ports(p) != 0) {
			fprintf(stderr, "etcd_proc: no free port\n");
			goto out;
		}
		proc_build_argv(p);
		if (proc_spawn(p) != 0)
			goto out;
		if ((rc = proc_wait_healthy(p)) != 1)
			break; /* 1: lost a port race, try other ports */
	}
out:
	if (rc != 0) {
		etcd_proc_destroy(p);
		return -1;
	}
	*out = p;
	return 0;
}

const char *
etcd_proc_endpoint(const etcd_proc *p)
{
	return p->endpoint;
}

const char *
etcd_proc_dir(const etcd_proc *p)
{
	return p->root;
}

int
etcd_proc_running(const etcd_proc *p)
{
	return p != NULL && p->pid > 0;
}

int
etcd_proc_stop(etcd_proc *p)
{
	int64_t deadline = proc_now_ms() + PROC_STOP_MS;
	int status;

	if (p == NULL || p->pid <= 0)
		return 0;
	kill(p->pid, SIGTERM);
	while (waitpid(p->pid, &status, WNOHANG) == 0) {
		if (proc_now_ms() >= deadline) {
			fprintf(stderr, "etcd_proc: etcd ignored SIGTERM for "
			                "5 s; killing it\n");
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &status, 0);
			break;
		}
		proc_sleep_ms(10);
	}
	p->pid = 0;
	return 0;
}

int
etcd_proc_restart(etcd_proc *p)
{
	etcd_proc_stop(p);
	if (proc_spawn(p) != 0)
		return -1;
	if (proc_wait_healthy(p) != 0) {
		fprintf(stderr, "etcd_proc: restart on %s failed\n",
		        p->endpoint);
		return -1;
	}
	return 0;
}

void
etcd_proc_destroy(etcd_proc *p)
{
	size_t i;

	if (p == NULL)
		return;
	etcd_proc_stop(p);
	if (p->root[0] != '\0' && strstr(p->root, "iotca-etcd-") != NULL)
		proc_rm_rf(p->root);
	for (i = 0; p->extra && p->extra[i]; i++)
		free(p->extra[i]);
	free(p->extra);
	free(p);
}
