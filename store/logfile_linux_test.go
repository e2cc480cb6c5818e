package store

import (
	"errors"
	"reflect"
	"syscall"
	"testing"
)

// A write that fails halfway (here: the file size limit, which like a full
// disk lets part of the write land and then fails with an error) is cut
// back off the file, the error is returned, and the log goes on working.
// docs/files.md: nothing half-written is acknowledged.
func TestLogfileFailedWriteIsTruncated(t *testing.T) {
	l, path := newLog(t, FsyncAlways)
	if err := l.Write([]Record{jobRec("before", 1, Planned)}); err != nil {
		t.Fatal(err)
	}
	before := l.Size()

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	limited := old
	limited.Cur = uint64(before) + 10 // the next frame fits only partly
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &limited); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	err := l.Write([]Record{jobRec("lost", 2, Planned), jobRec("lost.too", 3, Planned)})
	if rerr := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); rerr != nil {
		t.Fatalf("restore rlimit: %v", rerr)
	}
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("Write past the size limit: %v, want EFBIG", err)
	}
	if l.Size() != before || fileSize(t, path) != before {
		t.Fatalf("after the failed write Size %d, file %d; want both %d", l.Size(), fileSize(t, path), before)
	}
	if err := l.Write([]Record{jobRec("after", 4, Planned)}); err != nil {
		t.Fatalf("Write after a failed write: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got, res := readAll(t, path)
	if want := []Record{jobRec("before", 1, Planned), jobRec("after", 4, Planned)}; !reflect.DeepEqual(got, want) || res.Trimmed {
		t.Fatalf("replayed %+v (%+v), want %+v", got, res, want)
	}
}
