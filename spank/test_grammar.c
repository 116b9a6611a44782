/*
 * test_grammar.c - runs every vector of testdata/lwk-mode-vectors.txt
 * through lwk_grammar_check and checks that the verdict, the key at fault
 * and the message substring agree with the Go parser's expectations.
 *
 * Usage: test_grammar [VECTOR-FILE]   (default ../testdata/lwk-mode-vectors.txt)
 * Exit status 0 when every vector passes, 1 otherwise, 2 on a bad file.
 *
 *        test_grammar --decide
 * reads one hex-encoded spec per line on stdin and prints "ok" or
 * "bad KEY" ("-" for no key) per line; pkg/lwkmode's differential test
 * compares that with the Go parser on random specs.
 */
#include "grammar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_BYTES 8192

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes a SPEC field ("-" is empty, \xHH a byte) into out; returns the
 * length or -1 on a malformed field. */
static long decode(const char *field, char *out, size_t cap)
{
	size_t n = 0;
	const char *p;

	if (strcmp(field, "-") == 0)
		return 0;
	for (p = field; *p; p++) {
		char c = *p;

		if (c == '\\') {
			int hi, lo;

			if (p[1] != 'x' || (hi = hexval(p[2])) < 0 || (lo = hexval(p[3])) < 0)
				return -1;
			c = (char)(hi << 4 | lo);
			p += 3;
		}
		if (n == cap)
			return -1;
		out[n++] = c;
	}
	return (long)n;
}

/* Returns the next blank-separated field of *s and advances *s past it, or
 * NULL at the end of the line. */
static char *next_field(char **s)
{
	char *start = *s + strspn(*s, " \t");
	char *end;

	if (*start == '\0')
		return NULL;
	end = start + strcspn(start, " \t");
	*s = *end ? end + 1 : end;
	*end = '\0';
	return start;
}

static int decide(void)
{
	static char line[LINE_MAX_BYTES], spec[LINE_MAX_BYTES];

	while (fgets(line, sizeof(line), stdin) != NULL) {
		struct lwk_grammar_error err;
		size_t i, n = strcspn(line, "\r\n");

		if (n % 2 != 0)
			return 2;
		for (i = 0; i < n / 2; i++) {
			int hi = hexval(line[2 * i]), lo = hexval(line[2 * i + 1]);

			if (hi < 0 || lo < 0)
				return 2;
			spec[i] = (char)(hi << 4 | lo);
		}
		if (lwk_grammar_check(spec, n / 2, &err) == 0)
			puts("ok");
		else
			printf("bad %s\n", err.key[0] ? err.key : "-");
	}
	return fflush(stdout) == 0 ? 0 : 2;
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "../testdata/lwk-mode-vectors.txt";
	static char line[LINE_MAX_BYTES], spec[LINE_MAX_BYTES];
	int lineno = 0, vectors = 0, failures = 0;
	FILE *f;

	if (argc > 1 && strcmp(argv[1], "--decide") == 0)
		return decide();
	if ((f = fopen(path, "r")) == NULL) {
		perror(path);
		return 2;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		struct lwk_grammar_error err;
		char *rest = line, *verdict, *field, *expect, *message;
		long len;
		int rc, want_ok;

		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#' || line[strspn(line, " \t")] == '\0')
			continue;
		verdict = next_field(&rest);
		field = next_field(&rest);
		expect = next_field(&rest);
		message = rest + strspn(rest, " \t");
		if (verdict == NULL || field == NULL || expect == NULL ||
		    (strcmp(verdict, "ok") != 0 && strcmp(verdict, "bad") != 0)) {
			fprintf(stderr, "%s:%d: malformed vector\n", path, lineno);
			return 2;
		}
		if ((len = decode(field, spec, sizeof(spec))) < 0) {
			fprintf(stderr, "%s:%d: bad escape in %s\n", path, lineno, field);
			return 2;
		}
		vectors++;
		want_ok = strcmp(verdict, "ok") == 0;
		memset(&err, 0, sizeof(err));
		rc = lwk_grammar_check(spec, (size_t)len, &err);
		if (want_ok && rc != 0) {
			fprintf(stderr, "FAIL %s:%d: %s: rejected (%s: %s), want accepted\n",
				path, lineno, field, err.key, err.reason);
			failures++;
		} else if (!want_ok && rc == 0) {
			fprintf(stderr, "FAIL %s:%d: %s: accepted, want rejected (%s)\n",
				path, lineno, field, expect);
			failures++;
		} else if (!want_ok) {
			const char *want_key = strcmp(expect, "-") == 0 ? "" : expect;

			if (strcmp(err.key, want_key) != 0) {
				fprintf(stderr, "FAIL %s:%d: %s: key \"%s\", want \"%s\" (%s)\n",
					path, lineno, field, err.key, want_key, err.reason);
				failures++;
			} else if (strstr(err.reason, message) == NULL) {
				fprintf(stderr, "FAIL %s:%d: %s: reason \"%s\" lacks \"%s\"\n",
					path, lineno, field, err.reason, message);
				failures++;
			}
		}
	}
	fclose(f);
	if (vectors == 0) {
		fprintf(stderr, "%s: no vectors\n", path);
		return 2;
	}
	printf("test_grammar: %d vectors, %d failures\n", vectors, failures);
	return failures ? 1 : 0;
}
