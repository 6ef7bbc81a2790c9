/*
 * identity.c - a bounded JSON reader for the edge's identity message (see
 * identity.h). It understands exactly what RFC 8259 allows in one object,
 * keeps only two string members, and never reads past len.
 */
#include <string.h>

#include "identity.h"

#define JSON_MAX_DEPTH 8 /* nesting of skipped members' values */
#define JSON_KEY_MAX   32

typedef struct json_cursor {
	const char *p;
	const char *end;
	const char *why; /* the first error */
} json_cursor;

/* Records the first error; returns -1 for `return json_fail(...)`. */
static int
json_fail(json_cursor *c, const char *why)
{
	if (c->why == NULL)
		c->why = why;
	return -1;
}

static void
json_skip_ws(json_cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' ||
	                         *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

/* Consumes ch (after whitespace), or fails with why. */
static int
json_expect(json_cursor *c, char ch, const char *why)
{
	json_skip_ws(c);
	if (c->p >= c->end || *c->p != ch)
		return json_fail(c, why);
	c->p++;
	return 0;
}

static int
json_hex4(json_cursor *c, unsigned *out)
{
	unsigned v = 0;
	int i;

	if (c->end - c->p < 4)
		return json_fail(c, "truncated \\u escape");
	for (i = 0; i < 4; i++) {
		char h = *c->p++;

		v <<= 4;
		if (h >= '0' && h <= '9')
			v |= (unsigned)(h - '0');
		else if (h >= 'a' && h <= 'f')
			v |= (unsigned)(h - 'a' + 10);
		else if (h >= 'A' && h <= 'F')
			v |= (unsigned)(h - 'A' + 10);
		else
			return json_fail(c, "bad \\u escape");
	}
	*out = v;
	return 0;
}

/* One escaped character after the backslash. \u0000 and non-ASCII code
 * points become 0x80, which no caller accepts (ProductKey and DeviceName
 * are ASCII, and a key must not hide a NUL). */
static int
json_unescape(json_cursor *c, unsigned char *out)
{
	static const char from[] = "\"\\/bfnrt";
	static const char to[] = "\"\\/\b\f\n\r\t";
	const char *hit;
	unsigned cp;

	if (c->p >= c->end)
		return json_fail(c, "unterminated string");
	if (*c->p != 'u') {
		hit = strchr(from, *c->p);
		if (*c->p == '\0' || hit == NULL)
			return json_fail(c, "bad escape in a string");
		c->p++;
		*out = (unsigned char)to[hit - from];
		return 0;
	}
	c->p++;
	if (json_hex4(c, &cp) != 0)
		return -1;
	*out = (unsigned char)(cp > 0 && cp < 0x80 ? cp : 0x80);
	return 0;
}

/* A string at c->p (after whitespace). Up to cap - 1 decoded bytes are
 * stored NUL-terminated in out (out may be NULL to skip); *n gets the full
 * decoded length, which is >= cap when the string did not fit. */
static int
json_string(json_cursor *c, char *out, size_t cap, size_t *n)
{
	size_t len = 0;
	unsigned char ch;

	if (json_expect(c, '"', "a string was expected") != 0)
		return -1;
	for (;;) {
		if (c->p >= c->end)
			return json_fail(c, "unterminated string");
		ch = (unsigned char)*c->p++;
		if (ch == '"')
			break;
		if (ch < 0x20)
			return json_fail(c, "control character in a string");
		if (ch == '\\' && json_unescape(c, &ch) != 0)
			return -1;
		if (out != NULL && len + 1 < cap)
			out[len] = (char)ch;
		len++;
	}
	if (out != NULL && cap > 0)
		out[len < cap ? len : cap - 1] = '\0';
	if (n != NULL)
		*n = len;
	return 0;
}

/* A number or true/false/null: the bytes of the token, checked loosely. */
static int
json_scalar(json_cursor *c)
{
	static const char *const words[] = {"true", "false", "null"};
	size_t i, n;

	for (i = 0; i < 3; i++) {
		n = strlen(words[i]);
		if ((size_t)(c->end - c->p) >= n &&
		    memcmp(c->p, words[i], n) == 0) {
			c->p += n;
			return 0;
		}
	}
	n = 0;
	while (c->p < c->end && strchr("+-0123456789.eE", *c->p) != NULL &&
	       *c->p != '\0') {
		c->p++;
		n++;
	}
	return n > 0 ? 0 : json_fail(c, "a JSON value was expected");
}

/* Skips any value; depth counts the enclosing objects and arrays. */
static int
json_skip_value(json_cursor *c, int depth)
{
	char close;
	int first = 1;

	json_skip_ws(c);
	if (c->p >= c->end)
		return json_fail(c, "a JSON value was expected");
	if (*c->p == '"')
		return json_string(c, NULL, 0, NULL);
	if (*c->p != '{' && *c->p != '[')
		return json_scalar(c);
	if (depth >= JSON_MAX_DEPTH)
		return json_fail(c, "nested too deeply");
	close = *c->p == '{' ? '}' : ']';
	c->p++;
	for (;;) {
		json_skip_ws(c);
		if (first && c->p < c->end && *c->p == close)
			break;
		if (!first && json_expect(c, ',', "',' was expected") != 0)
			return -1;
		first = 0;
		if (close == '}' &&
		    (json_string(c, NULL, 0, NULL) != 0 ||
		     json_expect(c, ':', "':' was expected") != 0))
			return -1;
		if (json_skip_value(c, depth + 1) != 0)
			return -1;
		json_skip_ws(c);
		if (c->p < c->end && *c->p == close)
			break;
	}
	c->p++;
	return 0;
}

/* Whether s is all of set's characters and between min and max long. */
static int
identity_valid(const char *s, size_t len, size_t min, size_t max,
               const char *extra)
{
	size_t i;

	if (len < min || len > max)
		return 0;
	for (i = 0; i < len; i++) {
		char ch = s[i];

		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9') ||
		      (ch != '\0' && strchr(extra, ch) != NULL)))
			return 0;
	}
	return 1;
}

/* One member's value into the field it names (key is NUL-terminated). */
static int
identity_member(json_cursor *c, const char *key, device_identity *tmp,
                int *seen)
{
	size_t n;

	if (strcmp(key, "productKey") == 0) {
		if (*seen & 1)
			return json_fail(c, "productKey is given twice");
		*seen |= 1;
		if (json_string(c, tmp->product_key, sizeof(tmp->product_key),
		                &n) != 0)
			return -1;
		if (n >= sizeof(tmp->product_key) ||
		    !identity_valid(tmp->product_key, n, IDENTITY_PK_LEN,
		                    IDENTITY_PK_LEN, ""))
			return json_fail(c, "productKey is not 11 characters "
			                    "of [A-Za-z0-9]");
		return 0;
	}
	if (strcmp(key, "deviceName") == 0) {
		if (*seen & 2)
			return json_fail(c, "deviceName is given twice");
		*seen |= 2;
		if (json_string(c, tmp->device_name, sizeof(tmp->device_name),
		                &n) != 0)
			return -1;
		if (n >= sizeof(tmp->device_name) ||
		    !identity_valid(tmp->device_name, n, IDENTITY_DN_MIN,
		                    IDENTITY_DN_MAX, "_.@:-"))
			return json_fail(c, "deviceName is not 4-32 characters "
			                    "of [A-Za-z0-9_.@:-]");
		return 0;
	}
	return json_skip_value(c, 1);
}

int
identity_parse(const char *payload, size_t len, device_identity *id,
               const char **why)
{
	json_cursor c;
	device_identity tmp;
	char key[JSON_KEY_MAX + 1];
	size_t n;
	int seen = 0, first = 1;

	if (payload == NULL) { /* libmosquitto's empty payload */
		payload = "";
		len = 0;
	}
	c.p = payload;
	c.end = payload + len;
	c.why = NULL;
	memset(&tmp, 0, sizeof(tmp));
	if (len > IDENTITY_MAX_PAYLOAD) {
		json_fail(&c, "payload larger than 1024 bytes");
		goto out;
	}
	if (json_expect(&c, '{', "not a JSON object") != 0)
		goto out;
	for (;;) {
		json_skip_ws(&c);
		if (first && c.p < c.end && *c.p == '}')
			break;
		if (!first && json_expect(&c, ',', "',' was expected") != 0)
			goto out;
		first = 0;
		if (json_string(&c, key, sizeof(key), &n) != 0 ||
		    json_expect(&c, ':', "':' was expected") != 0)
			goto out;
		/* A key too long for key[] is none of ours: skip its value. */
		if (n >= sizeof(key))
			key[0] = '\0';
		if (identity_member(&c, key, &tmp, &seen) != 0)
			goto out;
		json_skip_ws(&c);
		if (c.p < c.end && *c.p == '}')
			break;
	}
	c.p++;
	json_skip_ws(&c);
	if (c.p != c.end)
		json_fail(&c, "data after the JSON object");
	else if (seen != 3)
		json_fail(&c, (seen & 1) ? "deviceName is missing"
		                         : "productKey is missing");
out:
	if (c.why != NULL) {
		*why = c.why;
		return -1;
	}
	*id = tmp;
	return 0;
}
