/*
 * grammar.h - submit-time check of the --lwk-mode grammar.
 *
 * A pure function mirroring the accept/reject decision (and the key at
 * fault) of the Go parser, pkg/lwkmode.Parse. Both are tested against
 * testdata/lwk-mode-vectors.txt; see pkg/lwkmode/doc.go for the grammar.
 * No allocation, no libslurm, no global state.
 */
#ifndef LWK_GRAMMAR_H
#define LWK_GRAMMAR_H

#include <stddef.h>

/* Limits, equal to the Go constants lwkmode.MaxSpecLen, MaxProfileLen,
 * MaxCores. */
#define LWK_SPEC_MAX 255
#define LWK_PROFILE_MAX 32
#define LWK_CORES_MAX 65535

/* Why a spec was rejected. */
struct lwk_grammar_error {
	/* The key at fault as lwkmode.ParseError.Key has it: "mem", "cores",
	 * "numa", "kargs", an unknown key as written, "profile" for the
	 * profile name, or "" when the error is about the whole spec. */
	char key[LWK_SPEC_MAX + 1];
	/* What is wrong, naming the value. Contains only printable ASCII: a
	 * forbidden byte is shown in hex, never copied. */
	char reason[LWK_SPEC_MAX + 128];
};

/*
 * lwk_grammar_check checks the len bytes at spec (the spec need not be
 * NUL-terminated; a NUL byte inside is a forbidden character). Returns 0
 * when the spec is well-formed, -1 otherwise with *err filled in (err may
 * be NULL).
 */
__attribute__((visibility("hidden")))
int lwk_grammar_check(const char *spec, size_t len,
		      struct lwk_grammar_error *err);

#endif /* LWK_GRAMMAR_H */
