package store

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// Writers that all wrote before any of them syncs share a single fsync:
// the first Sync covers everyone, the rest return at once.
func TestGroupCommitCoalesces(t *testing.T) { // docs/configuration.md database.fsync
	l, _ := newLog(t, FsyncAlways)
	const writers = 64
	var wrote, done sync.WaitGroup
	wrote.Add(writers)
	errs := make(chan error, writers)
	for w := range writers {
		done.Add(1)
		go func() {
			defer done.Done()
			err := l.Write([]Record{jobRec(fmt.Sprint("j", w), 1, Planned)})
			wrote.Done()
			wrote.Wait() // every write is in before anyone syncs
			if err == nil {
				err = l.Sync()
			}
			errs <- err
		}()
	}
	done.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := l.fsyncs.Load(); n != 1 {
		t.Fatalf("%d writers took %d fsyncs, want 1", writers, n)
	}
}

// Syncs that arrive while an fsync runs wait for it and are then covered
// together by one more fsync: two in all, however many waiters.
func TestGroupCommitWaitersShareNextFsync(t *testing.T) {
	l, _ := newLog(t, FsyncAlways)
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	l.fsync = func(f *os.File) error {
		once.Do(func() { close(started); <-release }) // hold the first fsync
		return f.Sync()
	}
	if err := l.Write([]Record{jobRec("first", 1, Planned)}); err != nil {
		t.Fatal(err)
	}
	firstDone := make(chan error, 1)
	go func() { firstDone <- l.Sync() }()
	<-started

	const waiters = 16
	for i := range waiters { // written after the running fsync started
		if err := l.Write([]Record{jobRec(fmt.Sprint("late", i), 1, Planned)}); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, waiters)
	for range waiters {
		go func() { errs <- l.Sync() }()
	}
	close(release)
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	for range waiters {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := l.fsyncs.Load(); n != 2 {
		t.Fatalf("1 + %d syncs took %d fsyncs, want 2", waiters, n)
	}
}

// A failed fsync is sticky: the dirty pages may be gone, so no later fsync
// can vouch for them, and the log refuses writes until reopened.
func TestFsyncFailureIsSticky(t *testing.T) {
	l, _ := newLog(t, FsyncAlways)
	eio := errors.New("input/output error")
	l.fsync = func(*os.File) error { return eio }
	if err := l.Write([]Record{jobRec("a", 1, Planned)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); !errors.Is(err, eio) {
		t.Fatalf("Sync: %v, want the fsync error", err)
	}
	l.fsync = (*os.File).Sync
	if err := l.Sync(); !errors.Is(err, eio) {
		t.Fatalf("second Sync: %v, want the sticky fsync error", err)
	}
	if err := l.Write([]Record{jobRec("b", 1, Planned)}); !errors.Is(err, eio) {
		t.Fatalf("Write after a failed fsync: %v, want the sticky error", err)
	}
}

func TestFsyncNeverDoesNotFsync(t *testing.T) {
	l, path := newLog(t, FsyncNever)
	for i := range 10 {
		if err := l.Write([]Record{jobRec(fmt.Sprint(i), 1, Planned)}); err != nil {
			t.Fatal(err)
		}
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := l.fsyncs.Load(); n != 0 {
		t.Fatalf("FsyncNever fsynced %d times", n)
	}
	if got, _ := readAll(t, path); len(got) != 10 {
		t.Fatalf("replayed %d records, want 10", len(got))
	}
}

// Under FsyncInterval, Sync is a no-op and each tick fsyncs if there were
// writes. Ticks are sent by the test; a tick send returns once the loop has
// taken it, so sending a second tick proves the first one was handled.
func TestFsyncIntervalSyncsOnTickAfterWrites(t *testing.T) {
	tick := make(chan time.Time)
	path := t.TempDir() + "/i.log"
	l, err := openLogfile(path, FsyncInterval, tick)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ticks := func(n int) {
		for range n {
			tick <- time.Time{}
		}
	}
	ticks(2)
	if n := l.fsyncs.Load(); n != 0 {
		t.Fatalf("ticks without writes fsynced %d times", n)
	}
	if err := l.Write([]Record{jobRec("a", 1, Planned)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if n := l.fsyncs.Load(); n != 0 {
		t.Fatalf("Sync under FsyncInterval fsynced %d times", n)
	}
	ticks(3)
	if n := l.fsyncs.Load(); n != 1 {
		t.Fatalf("ticks after one write fsynced %d times, want 1", n)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestFsyncIntervalCloseFsyncs(t *testing.T) {
	l, _ := newLog(t, FsyncInterval)
	if err := l.Write([]Record{jobRec("a", 1, Planned)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil { // stops the goroutine and fsyncs
		t.Fatal(err)
	}
	if n := l.fsyncs.Load(); n < 1 {
		t.Fatalf("Close under FsyncInterval did not fsync")
	}
}
