// Command lwkprog is the program the lwk-sim-mcexec tests run through the
// stand-in. Modes: "info" (print Cpus_allowed_list and LWK_SIM_*), "exit N",
// "trap-usr1 N" (print "ready", exit N on SIGUSR1), "sleep" (print the pid,
// wait to be killed), "burn D" (use D of CPU time).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	switch os.Args[1] {
	case "info":
		status, _ := os.ReadFile("/proc/self/status")
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "Cpus_allowed_list:") {
				fmt.Println(l)
			}
		}
		fmt.Println("LWK_SIM_OS=" + os.Getenv("LWK_SIM_OS"))
		fmt.Println("LWK_SIM_CPUS=" + os.Getenv("LWK_SIM_CPUS"))
	case "exit":
		n, _ := strconv.Atoi(os.Args[2])
		os.Exit(n)
	case "trap-usr1":
		n, _ := strconv.Atoi(os.Args[2])
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGUSR1)
		fmt.Println("ready")
		<-c
		os.Exit(n)
	case "sleep":
		fmt.Println(os.Getpid())
		time.Sleep(time.Hour)
	case "burn":
		// CPU time, not wall time: on a loaded machine a wall-clock loop
		// gets a fraction of it, and the test counting it flaked.
		d, _ := time.ParseDuration(os.Args[2])
		var ru syscall.Rusage
		for x := 0; ; x++ {
			if x%100000 == 0 {
				_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
				if time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) >= d {
					return
				}
			}
		}
	}
}
