/*
 * test.c - the harness's bookkeeping.
 */
#include "test.h"

#include <time.h>

int test_failed_checks;
int test_passed, test_failed;
const char *test_current = "";

void
test_run(const char *name, void (*fn)(void))
{
	struct timespec a, b;
	double ms;

	test_current = name;
	test_failed_checks = 0;
	clock_gettime(CLOCK_MONOTONIC, &a);
	fn();
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (double)(b.tv_sec - a.tv_sec) * 1e3 +
	     (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	if (test_failed_checks == 0) {
		test_passed++;
		printf("ok   %s (%.0f ms)\n", name, ms);
	} else {
		test_failed++;
		printf("FAIL %s (%d checks failed)\n", name,
		       test_failed_checks);
	}
	fflush(stdout);
}

int
test_summary(void)
{
	printf("%d passed, %d failed\n", test_passed, test_failed);
	return test_failed == 0 && test_passed > 0 ? 0 : 1;
}
