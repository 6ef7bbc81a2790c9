/*
 * sig.h - termination signals for long-running binaries.
 *
 * Call iotca_sig_block_termination() first thing in main(), before any
 * thread exists (gRPC, curl, NNG and our own pools start threads), so that
 * SIGINT and SIGTERM are never delivered asynchronously to some thread.
 * The main thread then waits for one with iotca_sig_wait_termination() and
 * shuts the program down in order. SIGPIPE is ignored.
 */
#ifndef IOTCA_SIG_H
#define IOTCA_SIG_H

/* Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (and in every
 * thread it creates later) and ignores SIGPIPE. */
void iotca_sig_block_termination(void);

/* Waits up to timeout_ms (<0: forever) for SIGINT, SIGTERM or SIGHUP.
 * Returns the signal number, or 0 on timeout. */
int iotca_sig_wait_termination(long timeout_ms);

#endif /* IOTCA_SIG_H */
