/*
 * test.h - the tiny test harness: one executable per module.
 *
 *   static void test_something(void) { CHECK(x == 1); CHECK_EQ_INT(a, b); }
 *   int main(void) { RUN(test_something); return test_summary(); }
 *
 * A failed CHECK prints file:line and the expression and marks the current
 * test failed; the test goes on so one run shows every failure. REQUIRE
 * returns from the test function instead. test_summary() prints
 * "N passed, M failed" and returns the exit status.
 */
#ifndef IOTCA_TEST_H
#define IOTCA_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

extern int test_failed_checks; /* in the current test */
extern int test_passed, test_failed;
extern const char *test_current;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: %s: CHECK(%s) failed\n",       \
			        __FILE__, __LINE__, test_current, #cond);      \
			test_failed_checks++;                                  \
		}                                                              \
	} while (0)

#define REQUIRE(cond)                                                          \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: %s: REQUIRE(%s) failed\n",     \
			        __FILE__, __LINE__, test_current, #cond);      \
			test_failed_checks++;                                  \
			return;                                                \
		}                                                              \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                     \
	do {                                                                   \
		long long a_ = (long long)(a), b_ = (long long)(b);            \
		if (a_ != b_) {                                                \
			fprintf(stderr,                                        \
			        "%s:%d: %s: %s == %s failed: %lld != %lld\n",  \
			        __FILE__, __LINE__, test_current, #a, #b, a_,  \
			        b_);                                           \
			test_failed_checks++;                                  \
		}                                                              \
	} while (0)

#define CHECK_EQ_STR(a, b)                                                     \
	do {                                                                   \
		const char *a_ = (a), *b_ = (b);                               \
		if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {         \
			fprintf(stderr,                                        \
			        "%s:%d: %s: %s == %s failed: \"%s\" != "       \
			        "\"%s\"\n",                                    \
			        __FILE__, __LINE__, test_current, #a, #b,      \
			        a_ ? a_ : "(null)", b_ ? b_ : "(null)");       \
			test_failed_checks++;                                  \
		}                                                              \
	} while (0)

#define CHECK_CONTAINS(hay, needle)                                            \
	do {                                                                   \
		const char *h_ = (hay), *n_ = (needle);                        \
		if (h_ == NULL || strstr(h_, n_) == NULL) {                    \
			fprintf(stderr,                                        \
			        "%s:%d: %s: \"%s\" does not contain "          \
			        "\"%s\"\n",                                    \
			        __FILE__, __LINE__, test_current,              \
			        h_ ? h_ : "(null)", n_);                       \
			test_failed_checks++;                                  \
		}                                                              \
	} while (0)

#define RUN(fn) test_run(#fn, fn)

void test_run(const char *name, void (*fn)(void));
int test_summary(void);

#endif /* IOTCA_TEST_H */
