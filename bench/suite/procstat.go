package suite

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// clockTick is the unit of the times in /proc/<pid>/stat: USER_HZ, which
// Linux fixes at 100 for every architecture Go supports except alpha and
// ia64, whatever the kernel's own HZ.
const clockTick = 10 * time.Millisecond

// ProcStat is the part of a /proc/<pid>/stat line the suite uses.
type ProcStat struct {
	PID, PPID int
	State     byte
	// UTime and STime are the process's own CPU time, all its threads
	// (live and exited); CUTime and CSTime are those of its children that
	// it has waited for.
	UTime, STime, CUTime, CSTime uint64
	// StartTime is when the process started, in clock ticks after boot: with
	// PID it names one process, whatever reuses the PID later.
	StartTime uint64
}

// CPU is the process's CPU time, its reaped children's included.
func (s ProcStat) CPU() time.Duration {
	return time.Duration(s.UTime+s.STime+s.CUTime+s.CSTime) * clockTick
}

var errStat = errors.New("malformed /proc stat line")

// ParseStat parses one /proc/<pid>/stat line:
//
//	pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
//	majflt cmajflt utime stime cutime cstime priority nice threads
//	itrealvalue starttime ...
//
// comm may hold spaces and parentheses, so the fields are counted from the
// last ')'.
func ParseStat(line []byte) (ProcStat, error) {
	var s ProcStat
	open := bytes.IndexByte(line, '(')
	closing := bytes.LastIndexByte(line, ')')
	if open < 1 || closing < open {
		return s, fmt.Errorf("%w: no (comm)", errStat)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(line[:open])))
	if err != nil || pid <= 0 {
		return s, fmt.Errorf("%w: pid %q", errStat, line[:open])
	}
	s.PID = pid
	f := bytes.Fields(line[closing+1:])
	// f[0] is state, f[1] ppid, f[11..14] utime stime cutime cstime, f[19]
	// starttime.
	if len(f) < 20 || len(f[0]) != 1 {
		return s, fmt.Errorf("%w: %d fields after comm", errStat, len(f))
	}
	s.State = f[0][0]
	ppid, err := strconv.Atoi(string(f[1]))
	if err != nil || ppid < 0 {
		return s, fmt.Errorf("%w: ppid %q", errStat, f[1])
	}
	s.PPID = ppid
	for i, dst := range []*uint64{&s.UTime, &s.STime, &s.CUTime, &s.CSTime} {
		// cutime and cstime are signed in the kernel's format; they are
		// never negative in practice, and a negative one is malformed here.
		v, err := strconv.ParseUint(string(f[11+i]), 10, 64)
		if err != nil {
			return s, fmt.Errorf("%w: field %d %q", errStat, 14+i, f[11+i])
		}
		*dst = v
	}
	if s.StartTime, err = strconv.ParseUint(string(f[19]), 10, 64); err != nil {
		return s, fmt.Errorf("%w: starttime %q", errStat, f[19])
	}
	return s, nil
}

// readStats reads the stat line of every process under proc (normally
// "/proc"). Processes that exit while it reads are left out, and so is a
// line that does not parse.
func readStats(proc string) ([]ProcStat, error) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", proc, err)
	}
	var out []ProcStat
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(proc, e.Name(), "stat"))
		if err != nil {
			continue // it exited
		}
		s, err := ParseStat(b)
		if err != nil {
			continue // not a process line the kernel writes; not one of ours
		}
		out = append(out, s)
	}
	return out, nil
}

// Tree returns root and all its descendants found in stats, root first.
// Nothing is returned when root is not among them.
func Tree(stats []ProcStat, root int) []ProcStat {
	kids := map[int][]int{}
	byPID := map[int]ProcStat{}
	for _, s := range stats {
		byPID[s.PID] = s
		kids[s.PPID] = append(kids[s.PPID], s.PID)
	}
	r, ok := byPID[root]
	if !ok {
		return nil
	}
	out := []ProcStat{r}
	for i := 0; i < len(out); i++ {
		for _, k := range kids[out[i].PID] {
			if k != root {
				out = append(out, byPID[k])
			}
		}
	}
	return out
}

// TreeCPU sums CPU over a tree. A child that exits between two samples
// leaves the tree, but it is reaped by its parent, whose CUTime and CSTime
// then include everything it used: so the sum over the live tree only
// grows, and the difference of two samples is the CPU the whole tree used
// in between.
func TreeCPU(tree []ProcStat) time.Duration {
	var d time.Duration
	for _, s := range tree {
		d += s.CPU()
	}
	return d
}

// serverCPU samples the CPU used so far by the process root and all its
// descendants (a tock master and its workers, redis and a rewrite child).
func serverCPU(root int) (time.Duration, error) {
	stats, err := readStats("/proc")
	if err != nil {
		return 0, err
	}
	tree := Tree(stats, root)
	if tree == nil {
		return 0, fmt.Errorf("process %d is gone", root)
	}
	return TreeCPU(tree), nil
}
