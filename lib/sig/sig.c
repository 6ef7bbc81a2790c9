/*
 * sig.c - synchronous handling of termination signals.
 */
#include "sig/sig.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

static void
sig_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
}

void
iotca_sig_block_termination(void)
{
	sigset_t set;

	sig_set(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int
iotca_sig_wait_termination(long timeout_ms)
{
	struct timespec ts;
	sigset_t set;
	int sig;

	sig_set(&set);
	for (;;) {
		if (timeout_ms < 0) {
			sig = sigwaitinfo(&set, NULL);
		} else {
			ts.tv_sec = timeout_ms / 1000;
			ts.tv_nsec = (timeout_ms % 1000) * 1000000L;
			sig = sigtimedwait(&set, NULL, &ts);
		}
		if (sig > 0)
			return sig;
		if (errno == EAGAIN)
			return 0;
		/* EINTR: another signal (e.g. a debugger); wait again. */
	}
}
