// Package lifecycle tests lwk-prolog, lwk-epilog and lwkctl as the programs
// slurmd and an admin run, against the simulated IHK backend and the paper's
// node fixture: a fault or a SIGKILL at every lifecycle step must leave (or,
// after lwk-epilog, return) the node exactly as it was.
package lifecycle
