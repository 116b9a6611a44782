// Command empty does nothing. benchlifecycle builds it as the lifecycle
// programs are built, in this module (so with its go line and GODEBUG
// defaults), and times it: the least any Go program costs to start and
// exit.
package main

func main() {}
