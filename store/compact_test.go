package store

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// replayJobs rebuilds a job store from the log at path.
func replayJobs(t *testing.T, path string) *Jobs {
	t.Helper()
	j := NewJobs()
	if _, err := Replay(path, func(r Record) error { j.Apply(r); return nil }); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return j
}

// jobsState is a store's content, comparable with reflect.DeepEqual.
func jobsState(j *Jobs) map[string]Job {
	m := make(map[string]Job)
	j.Query("", func(job Job) bool { m[job.ID] = job; return true })
	return m
}

func TestCompactRewritesLiveState(t *testing.T) { // docs/files.md
	l, path := newLog(t, FsyncAlways)
	history := []Record{
		jobRec("a", 1, Planned), jobRec("b", 2, Planned), jobRec("c", 3, Planned),
		jobRec("a", 10, Planned), jobRemoval("b"),
		statusRec("c", 3, Triggered, nil),
		statusRec("c", 3, Executed, &Outcome{StartedAt: 3, Duration: 4, Output: "ok"}),
	}
	for i := range 50 { // churn that compaction drops
		history = append(history, jobRec("tmp", int64(i), Planned), jobRemoval("tmp"))
	}
	if err := l.Write(history); err != nil {
		t.Fatal(err)
	}
	want := replayJobs(t, path)
	before := l.Size()
	if err := l.Compact(want.Records(nil)); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if l.Size() >= before || l.Size() != fileSize(t, path) {
		t.Fatalf("Size %d after compaction (file %d), was %d", l.Size(), fileSize(t, path), before)
	}
	if err := l.Write([]Record{jobRec("d", 4, Planned)}); err != nil {
		t.Fatal(err)
	}
	want.Set("d", 4)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got := replayJobs(t, path)
	if !reflect.DeepEqual(jobsState(got), jobsState(want)) || got.Counts() != want.Counts() {
		t.Fatalf("after compaction\n got %v\nwant %v", jobsState(got), jobsState(want))
	}
	if _, err := os.Stat(path + compactSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s left behind: %v", compactSuffix, err)
	}
}

// Records written and synced while a compaction runs all end up in the
// compacted file: no acknowledged record is lost. docs/files.md.
func TestCompactConcurrentWritesLoseNothing(t *testing.T) {
	l, path := newLog(t, FsyncAlways)
	model := NewJobs()
	pad := strings.Repeat("p", 100) // big records, so the catch-up copy has work
	write := func(id string, exec int64) {
		if err := l.Write([]Record{jobRec(id, exec, Planned)}); err != nil {
			t.Fatal(err)
		}
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		model.Set(id, exec)
	}
	for i := range 2000 {
		write(fmt.Sprintf("old.%d.%s", i%500, pad), int64(i))
	}

	// Hold the compaction after its snapshot is written until the writer
	// has written more than swapThreshold behind it.
	snapshotDone, writerAhead := make(chan struct{}), make(chan struct{})
	var once sync.Once
	l.fsync = func(f *os.File) error {
		if f.Name() == path+compactSuffix {
			once.Do(func() { close(snapshotDone); <-writerAhead })
		}
		return f.Sync()
	}
	c, err := l.StartCompaction()
	if err != nil {
		t.Fatal(err)
	}
	snapshot := model.Records(nil)
	done := make(chan error, 1)
	go func() { done <- c.Run(snapshot) }()

	<-snapshotDone
	i := 0
	for ; i < 4000; i++ {
		write(fmt.Sprintf("new.%d.%s", i, pad), int64(i))
	}
	close(writerAhead)
	for running := true; running; i++ { // keep writing through catch-up and swap
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			running = false
		default:
			write(fmt.Sprintf("new.%d.%s", i, pad), int64(i))
		}
	}
	write("after", 1)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got := replayJobs(t, path)
	if !reflect.DeepEqual(jobsState(got), jobsState(model)) {
		t.Fatalf("compacted log has %d jobs, the acknowledged writes %d", got.Len(), model.Len())
	}
	t.Logf("%d records written during the compaction", i)
}

func TestCompactionIsExclusive(t *testing.T) {
	l, _ := newLog(t, FsyncAlways)
	c, err := l.StartCompaction()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.StartCompaction(); !errors.Is(err, ErrCompacting) {
		t.Fatalf("second StartCompaction: %v, want ErrCompacting", err)
	}
	if err := c.Run(nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Run(nil); err == nil {
		t.Fatal("a finished compaction ran again")
	}
	if err := l.Compact(nil); err != nil {
		t.Fatalf("compaction after one finished: %v", err)
	}
}

func TestCompactFailureKeepsOldLog(t *testing.T) {
	l, path := newLog(t, FsyncAlways)
	if err := l.Write(threeJobs); err != nil {
		t.Fatal(err)
	}
	eio := errors.New("input/output error")
	l.fsync = func(f *os.File) error {
		if f.Name() == path+compactSuffix {
			return eio
		}
		return f.Sync()
	}
	if err := l.Compact([]Record{jobRec("a", 1, Planned)}); !errors.Is(err, eio) {
		t.Fatalf("Compact: %v, want the fsync error", err)
	}
	if _, err := os.Stat(path + compactSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("failed compaction left %s: %v", compactSuffix, err)
	}
	if err := l.Write([]Record{jobRec("d", 4, Planned)}); err != nil {
		t.Fatalf("Write after a failed compaction: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := readAll(t, path); len(got) != 4 {
		t.Fatalf("replayed %d records, want the old 3 and 1 more", len(got))
	}
}

func TestCompactAfterClose(t *testing.T) {
	l, path := newLog(t, FsyncAlways)
	c, err := l.StartCompaction()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Run(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v, want ErrClosed", err)
	}
	if _, err := os.Stat(path + compactSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s left behind: %v", compactSuffix, err)
	}
}
