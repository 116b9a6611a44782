// Package lwkmode parses the --lwk-mode job option into a typed Request. It
// owns the pieces of that grammar the node configuration reuses: profile
// names (CheckProfileName), kernel-argument tokens (CheckKarg) and sizes
// (ParseSize). It imports no other package of this module.
//
// It speaks no kernel interface: the specification arrives as a string from
// the SPANK job-control environment (LWK_MODE / SPANK_LWK_MODE, see the
// spank/ shim) and the result feeds the planner. The C shim (spank/grammar.c)
// makes the same accept/reject decision at submit time; both are tested
// against testdata/lwk-mode-vectors.txt.
//
// Grammar (every byte must be one of [A-Za-z0-9_.=,:+%-]; at most
// MaxSpecLen bytes):
//
//	spec    = "" | "off" | profile [ ":" option { "," option } ]
//	profile = [A-Za-z][A-Za-z0-9_.-]{0,31}
//	option  = "mem=" size | "cores=" count | "numa=" ("strict"|"near")
//	        | "kargs=" karg { "+" karg }
//	size    = digits ("B"|"K"|"M"|"G"|"T")   ; binary units, case-insensitive
//	        | digits "%"                      ; 1..100, share of the job's memory
//	count   = digits                          ; 1..MaxCores
//	karg    = [A-Za-z0-9_][A-Za-z0-9_.=-]*
//
// The empty spec (a bare --lwk-mode) and the reserved profile name "default"
// both select the node's default profile (Request.Profile == ""); the
// normalised form is "default", so that a default-profile request is never
// an empty string in the environment (an empty LWK_MODE reads as "no
// request"). Profile names equal to "off" or "default" in another letter
// case are rejected as a likely typo. A size needs a unit: a bare number is
// rejected because Slurm's own --mem reads bare numbers as MiB.
//
// Parsing checks only the grammar. Whether the profile exists, and whether
// it allows the extra kernel arguments, is the node configuration's business
// (config.Config.Profile, config.Profile.CheckKargs); whether the CPUs and
// memory exist is the planner's.
package lwkmode
