package suite

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A stat line as the kernel writes it, with a comm that has spaces and a
// ')' in it.
const statLine = "4242 (tock worker) x) S 4200 4242 4200 0 -1 4194560 1234 0 5 0 " +
	"150 37 12 3 20 0 9 0 987654 123456789 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"

func TestParseStat(t *testing.T) {
	s, err := ParseStat([]byte(statLine))
	if err != nil {
		t.Fatal(err)
	}
	want := ProcStat{PID: 4242, PPID: 4200, State: 'S', UTime: 150, STime: 37, CUTime: 12, CSTime: 3, StartTime: 987654}
	if s != want {
		t.Fatalf("got %+v, want %+v", s, want)
	}
	if got := s.CPU(); got != (150+37+12+3)*10*time.Millisecond {
		t.Fatalf("CPU %s", got)
	}
}

func TestParseStatRejects(t *testing.T) {
	fields := strings.Fields(statLine[strings.LastIndexByte(statLine, ')')+1:])
	withField := func(i int, v string) string {
		f := append([]string(nil), fields...)
		f[i] = v
		return "4242 (tock worker) x) " + strings.Join(f, " ")
	}
	for _, line := range []string{
		"",
		"4242 tock S 1",
		"(tock) S 1 " + strings.Join(fields[1:], " "),
		"-3 (tock) " + strings.Join(fields, " "),
		"abc (tock) " + strings.Join(fields, " "),
		"4242 (tock) S 1 2 3",                 // too few fields
		withField(0, "SS"),                    // state is one letter
		withField(1, "-1"),                    // ppid
		withField(11, "x"),                    // utime
		withField(14, "-5"),                   // cstime
		withField(19, "18446744073709551616"), // starttime overflows
		"4242 )tock( S " + strings.Join(fields[1:], " "),
	} {
		if s, err := ParseStat([]byte(line)); !errors.Is(err, errStat) {
			t.Errorf("%q: got %+v, %v; want a malformed-line error", line, s, err)
		}
	}
}

func TestTree(t *testing.T) {
	stats := []ProcStat{
		{PID: 1, PPID: 0}, {PID: 10, PPID: 1, UTime: 5}, {PID: 11, PPID: 10, UTime: 7, CUTime: 2},
		{PID: 12, PPID: 10, STime: 1}, {PID: 13, PPID: 12, CSTime: 4}, {PID: 20, PPID: 1, UTime: 100},
	}
	tree := Tree(stats, 10)
	var pids []int
	for _, s := range tree {
		pids = append(pids, s.PID)
	}
	if len(pids) != 4 || pids[0] != 10 {
		t.Fatalf("tree of 10: %v", pids)
	}
	if got := TreeCPU(tree); got != (5+7+2+1+4)*clockTick {
		t.Fatalf("TreeCPU %s", got)
	}
	if Tree(stats, 99) != nil {
		t.Fatal("tree of a missing root")
	}
}

// TestServerCPUSeesChildren: the CPU of a child process counts while it
// runs and, once reaped, through the parent's cutime: the sum over a tree
// never goes down.
func TestServerCPUSeesChildren(t *testing.T) {
	// A shell that runs a busy child for a while and waits for it: the
	// child's CPU is first the child's, then the shell's cutime.
	cmd := exec.Command("/bin/sh", "-c", `i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done & wait; read x`)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	var last time.Duration
	deadline := time.Now().Add(60 * time.Second)
	for {
		cpu, err := serverCPU(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if cpu < last {
			t.Fatalf("tree CPU went down: %s after %s", cpu, last)
		}
		last = cpu
		stats, err := readStats("/proc")
		if err != nil {
			t.Fatal(err)
		}
		tree := Tree(stats, cmd.Process.Pid)
		if len(tree) == 1 && tree[0].CUTime+tree[0].CSTime > 0 {
			return // the child has been reaped and is counted
		}
		if time.Now().After(deadline) {
			t.Fatalf("the busy child was not reaped and counted within 60s: %+v", tree)
		}
		time.Sleep(10 * time.Millisecond) // polling /proc
	}
}

func TestServerCPUOfMissingProcess(t *testing.T) {
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := serverCPU(cmd.Process.Pid); err == nil {
		t.Fatal("no error for a process that is gone")
	}
	if _, err := serverCPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

// FuzzParseStat: any line either parses into a stat whose fields came from
// the line, or is rejected with errStat; it never panics.
func FuzzParseStat(f *testing.F) {
	f.Add([]byte(statLine))
	f.Add([]byte("1 (init) S 0 1 1 0 -1 4194560 0 0 0 0 1 2 3 4 20 0 1 0 5 0 0"))
	f.Add([]byte("7 () R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"))
	f.Fuzz(func(t *testing.T, line []byte) {
		s, err := ParseStat(line)
		if err != nil {
			if !errors.Is(err, errStat) {
				t.Fatalf("error %v is not errStat", err)
			}
			return
		}
		if s.PID <= 0 || s.PPID < 0 || !strings.Contains(string(line), ")") {
			t.Fatalf("%q parsed as %+v", line, s)
		}
	})
}
