/*
 * log.h - structured logs for operators.
 *
 * One line per event on stderr:
 *   ts=2026-11-27T00:40:21.123Z level=warn event=ETCD-UNREACHABLE endpoint=...
 * msg="..." The event name is stable (operators grep and alert on it); the
 * fields are key=value. Values that may contain spaces or quotes go through
 * iotca_log_quote(). Lines are written with one write(2) each, so lines from
 * several threads never interleave. Thread-safe.
 */
#ifndef IOTCA_LOG_H
#define IOTCA_LOG_H

#include <stddef.h>

typedef enum iotca_log_level {
	IOTCA_LOG_DEBUG = 0,
	IOTCA_LOG_INFO,
	IOTCA_LOG_WARN,
	IOTCA_LOG_ERROR,
} iotca_log_level;

/* Sets the lowest level that is written. The default is info. */
void iotca_log_set_level(iotca_log_level level);

/* Parses "debug", "info", "warn"/"warning", "error". 0 on success, -1 if not.
 */
int iotca_log_level_parse(const char *s, iotca_log_level *out);

/* Whether an event at this level would be written. */
int iotca_log_enabled(iotca_log_level level);

/* Writes one event. fields is a printf format for the key=value part. */
void iotca_log(iotca_log_level level, const char *event, const char *fields,
               ...) __attribute__((format(printf, 3, 4)));

/*
 * Writes s into out (size n) as a log value: bare when it is made of
 * [A-Za-z0-9._:/@+,-] only, else in double quotes with \" \\ \n \t and
 * other control bytes escaped. Truncates with "..." when out is too small.
 * Returns out.
 */
const char *iotca_log_quote(char *out, size_t n, const char *s);

#define IOTCA_LOG_QUOTE_MAX 512

#define iotca_log_debug(ev, ...) iotca_log(IOTCA_LOG_DEBUG, ev, __VA_ARGS__)
#define iotca_log_info(ev, ...)  iotca_log(IOTCA_LOG_INFO, ev, __VA_ARGS__)
#define iotca_log_warn(ev, ...)  iotca_log(IOTCA_LOG_WARN, ev, __VA_ARGS__)
#define iotca_log_error(ev, ...) iotca_log(IOTCA_LOG_ERROR, ev, __VA_ARGS__)

#endif /* IOTCA_LOG_H */
