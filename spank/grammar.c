/*
 * grammar.c - the --lwk-mode grammar check (see grammar.h).
 *
 * The steps and their order follow pkg/lwkmode/parse.go so that a spec is
 * rejected for the same key: length, then bytes, then the fixed spellings,
 * then the profile name, then each option in turn. Any change here needs
 * the same change there, and a vector in testdata/lwk-mode-vectors.txt.
 */
#include "grammar.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* A byte string that is not NUL-terminated. */
struct span {
	const char *p;
	size_t n;
};

static int fail(struct lwk_grammar_error *err, struct span key,
		const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct lwk_grammar_error *err, struct span key,
		const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -1;
	if (key.n > LWK_SPEC_MAX)
		key.n = LWK_SPEC_MAX;
	memcpy(err->key, key.p, key.n);
	err->key[key.n] = '\0';
	va_start(ap, fmt);
	vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
	va_end(ap);
	return -1;
}

static const struct span no_key = { "", 0 };
static const struct span profile_key = { "profile", 7 };

static int is_letter(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* The bytes allowed anywhere in a spec; no shell metacharacter, blank,
 * control or non-ASCII byte is among them. */
static int spec_byte(char c)
{
	return is_letter(c) || is_digit(c) || (c != '\0' && strchr("_.=,:+%-", c) != NULL);
}

static int span_eq(struct span s, const char *lit)
{
	return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

/* ASCII case-insensitive comparison (the spec is ASCII by now). */
static int span_eq_fold(struct span s, const char *lit)
{
	size_t i;

	if (s.n != strlen(lit))
		return 0;
	for (i = 0; i < s.n; i++) {
		char a = s.p[i], b = lit[i];

		if (a >= 'A' && a <= 'Z')
			a = (char)(a - 'A' + 'a');
		if (b >= 'A' && b <= 'Z')
			b = (char)(b - 'A' + 'a');
		if (a != b)
			return 0;
	}
	return 1;
}

static int all_digits(struct span s)
{
	size_t i;

	if (s.n == 0)
		return 0;
	for (i = 0; i < s.n; i++)
		if (!is_digit(s.p[i]))
			return 0;
	return 1;
}

/* Decimal digits to uint64; returns -1 on overflow. */
static int to_u64(struct span s, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < s.n; i++) {
		unsigned d = (unsigned)(s.p[i] - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int check_profile(struct span name, struct lwk_grammar_error *err)
{
	static const char *const reserved[] = { "off", "default" };
	size_t i;

	if (name.n == 0)
		return fail(err, profile_key, "empty profile name");
	if (name.n > LWK_PROFILE_MAX)
		return fail(err, profile_key, "name \"%.*s\" too long: %zu bytes, at most %d",
			    (int)name.n, name.p, name.n, LWK_PROFILE_MAX);
	if (!is_letter(name.p[0]))
		return fail(err, profile_key, "bad name \"%.*s\": must start with a letter",
			    (int)name.n, name.p);
	for (i = 1; i < name.n; i++) {
		char c = name.p[i];

		if (!is_letter(c) && !is_digit(c) && c != '_' && c != '.' && c != '-')
			return fail(err, profile_key,
				    "bad name \"%.*s\": '%c' not allowed (letters, digits, _ . -)",
				    (int)name.n, name.p, c);
	}
	for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (!span_eq(name, reserved[i]) && span_eq_fold(name, reserved[i]))
			return fail(err, profile_key,
				    "name \"%.*s\" is reserved; did you mean \"%s\"?",
				    (int)name.n, name.p, reserved[i]);
	return 0;
}

static int check_mem(struct span key, struct span v, struct lwk_grammar_error *err)
{
	struct span num = v;
	uint64_t n, mult;
	size_t i = 0;

	if (v.p[v.n - 1] == '%') {
		num.n--;
		if (!all_digits(num) || to_u64(num, &n) < 0 || n < 1 || n > 100)
			return fail(err, key, "bad percentage \"%.*s\": want an integer 1-100",
				    (int)v.n, v.p);
		return 0;
	}
	while (i < v.n && is_digit(v.p[i]))
		i++;
	num.n = i;
	if (num.n == 0)
		return fail(err, key, "bad size \"%.*s\": want a number with a unit (B, K, M, G, T) or a percentage",
			    (int)v.n, v.p);
	if (i == v.n)
		return fail(err, key, "bad size \"%.*s\": missing unit (B, K, M, G, T or %%)",
			    (int)v.n, v.p);
	switch (v.p[i]) {
	case 'B': case 'b': mult = 1; break;
	case 'K': case 'k': mult = UINT64_C(1) << 10; break;
	case 'M': case 'm': mult = UINT64_C(1) << 20; break;
	case 'G': case 'g': mult = UINT64_C(1) << 30; break;
	case 'T': case 't': mult = UINT64_C(1) << 40; break;
	default: mult = 0; break;
	}
	if (mult == 0 || i + 1 != v.n)
		return fail(err, key, "bad size \"%.*s\": unknown suffix \"%.*s\"",
			    (int)v.n, v.p, (int)(v.n - i), v.p + i);
	if (to_u64(num, &n) < 0 || n > UINT64_MAX / mult)
		return fail(err, key, "bad size \"%.*s\": too large", (int)v.n, v.p);
	if (n == 0)
		return fail(err, key, "bad size \"%.*s\": must be positive", (int)v.n, v.p);
	return 0;
}

static int check_cores(struct span key, struct span v, struct lwk_grammar_error *err)
{
	uint64_t n;

	if (!all_digits(v))
		return fail(err, key, "bad count \"%.*s\": want a positive integer",
			    (int)v.n, v.p);
	if (to_u64(v, &n) < 0 || n > LWK_CORES_MAX)
		return fail(err, key, "bad count \"%.*s\": at most %d",
			    (int)v.n, v.p, LWK_CORES_MAX);
	if (n == 0)
		return fail(err, key, "bad count \"%.*s\": must be positive",
			    (int)v.n, v.p);
	return 0;
}

static int check_numa(struct span key, struct span v, struct lwk_grammar_error *err)
{
	if (span_eq(v, "strict") || span_eq(v, "near"))
		return 0;
	return fail(err, key, "bad policy \"%.*s\": want \"strict\" or \"near\"",
		    (int)v.n, v.p);
}

static int check_kargs(struct span key, struct span v, struct lwk_grammar_error *err)
{
	size_t start = 0, end, i;

	for (;;) {
		struct span t;

		for (end = start; end < v.n && v.p[end] != '+'; end++)
			;
		t.p = v.p + start;
		t.n = end - start;
		if (t.n == 0)
			return fail(err, key, "empty kernel argument in \"%.*s\" (stray +)",
				    (int)v.n, v.p);
		if (!is_letter(t.p[0]) && !is_digit(t.p[0]) && t.p[0] != '_')
			return fail(err, key, "bad kernel argument \"%.*s\": must start with a letter, digit or _",
				    (int)t.n, t.p);
		for (i = 1; i < t.n; i++) {
			char c = t.p[i];

			if (!is_letter(c) && !is_digit(c) && c != '_' && c != '.' &&
			    c != '=' && c != '-')
				return fail(err, key,
					    "bad kernel argument \"%.*s\": '%c' not allowed (letters, digits, _ . = -)",
					    (int)t.n, t.p, c);
		}
		if (end == v.n)
			return 0;
		start = end + 1;
	}
}

int lwk_grammar_check(const char *spec, size_t len, struct lwk_grammar_error *err)
{
	static const char *const keys[] = { "mem", "cores", "numa", "kargs" };
	struct span all = { spec, len }, profile, opts;
	const char *colon;
	unsigned seen = 0;
	size_t i, start, end;

	if (len > LWK_SPEC_MAX)
		return fail(err, no_key, "too long: %zu bytes, at most %d", len, LWK_SPEC_MAX);
	for (i = 0; i < len; i++)
		if (!spec_byte(spec[i]))
			return fail(err, no_key, "forbidden character 0x%02x at byte %zu",
				    (unsigned)(unsigned char)spec[i], i);
	if (len == 0 || span_eq(all, "default") || span_eq(all, "off"))
		return 0;

	colon = memchr(spec, ':', len);
	profile.p = spec;
	profile.n = colon ? (size_t)(colon - spec) : len;
	if (check_profile(profile, err) < 0)
		return -1;
	if (span_eq_fold(profile, "off"))
		return fail(err, profile_key, "\"off\" takes no options");
	if (colon == NULL)
		return 0;
	opts.p = colon + 1;
	opts.n = len - profile.n - 1;
	if (opts.n == 0)
		return fail(err, no_key, "no options after \"%.*s:\"", (int)profile.n, profile.p);

	for (start = 0;; start = end + 1) {
		struct span opt, key, value;
		const char *eq;
		unsigned k;

		for (end = start; end < opts.n && opts.p[end] != ','; end++)
			;
		opt.p = opts.p + start;
		opt.n = end - start;
		if (opt.n == 0)
			return fail(err, no_key, "empty option (stray comma)");
		eq = memchr(opt.p, '=', opt.n);
		if (eq == NULL)
			return fail(err, opt, "missing \"=VALUE\"");
		key.p = opt.p;
		key.n = (size_t)(eq - opt.p);
		value.p = eq + 1;
		value.n = opt.n - key.n - 1;
		if (key.n == 0)
			return fail(err, no_key, "option \"%.*s\" has no key", (int)opt.n, opt.p);
		for (k = 0; k < 4 && !span_eq(key, keys[k]); k++)
			;
		if (k == 4)
			return fail(err, key, "unknown key (want mem, cores, numa or kargs)");
		if (seen & (1u << k))
			return fail(err, key, "given twice");
		seen |= 1u << k;
		if (value.n == 0)
			return fail(err, key, "empty value");
		switch (k) {
		case 0:
			if (check_mem(key, value, err) < 0)
				return -1;
			break;
		case 1:
			if (check_cores(key, value, err) < 0)
				return -1;
			break;
		case 2:
			if (check_numa(key, value, err) < 0)
				return -1;
			break;
		default:
			if (check_kargs(key, value, err) < 0)
				return -1;
			break;
		}
		if (end == opts.n)
			return 0;
	}
}
