// Package man holds the sources of slurm-lwk's man pages (NAME.SECTION.md,
// in the markdown go-md2man turns into roff; scripts/packages renders and
// packages them) and the test that keeps them in step with the code: every
// flag each binary's --help prints, every lwkctl subcommand and every
// plugstack.conf argument of the SPANK plugin must be documented in its page.
// The lwk.conf keys are checked against lwk.conf.5.md by pkg/config's tests.
//
// It speaks no kernel interface; the test builds the binaries and runs them
// with --help.
package man
