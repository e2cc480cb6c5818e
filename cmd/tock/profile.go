package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// envCPUProfile, when set, makes each tock process write a CPU profile to
// "$TOCK_CPUPROFILE.<pid>" until it exits cleanly: the way to see where a
// benchmark's time goes in the master and in every worker.
const envCPUProfile = "TOCK_CPUPROFILE"

// startProfile starts the CPU profile if asked for and returns its stop.
func startProfile() func() {
	base := os.Getenv(envCPUProfile)
	if base == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s.%d", base, os.Getpid()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "tock: cpu profile:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "tock: cpu profile:", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
