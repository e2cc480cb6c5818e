package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// newLog opens a fresh log in a temp dir.
func newLog(t *testing.T, policy FsyncPolicy) (*Logfile, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "000.log")
	l, err := OpenLogfile(path, policy)
	if err != nil {
		t.Fatalf("OpenLogfile: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l, path
}

// writeLog creates a log at path holding recs, one Write per record.
func writeLog(t *testing.T, path string, recs ...Record) {
	t.Helper()
	l, err := OpenLogfile(path, FsyncAlways)
	if err != nil {
		t.Fatalf("OpenLogfile: %v", err)
	}
	for _, r := range recs {
		if err := l.Write([]Record{r}); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if err := l.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// frameOffsets returns where each record's frame starts in a log of recs,
// and where the file ends.
func frameOffsets(t *testing.T, recs []Record) (offs []int64, end int64) {
	t.Helper()
	off := int64(headerSize)
	for _, r := range recs {
		offs = append(offs, off)
		frame, err := appendFrame(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		off += int64(len(frame))
	}
	return offs, off
}

func readAll(t *testing.T, path string) ([]Record, ReplayResult) {
	t.Helper()
	recs, res, err := ReadAll(path)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	return recs, res
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func TestLogfileRoundTrip(t *testing.T) { // docs/files.md
	l, path := newLog(t, FsyncAlways)
	recs := sampleRecords()
	if err := l.Write(recs[:3]); err != nil {
		t.Fatal(err)
	}
	if err := l.Write(recs[3:]); err != nil {
		t.Fatal(err)
	}
	if err := l.Write(nil); err != nil {
		t.Fatalf("empty Write: %v", err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	_, end := frameOffsets(t, recs)
	if l.Size() != end {
		t.Errorf("Size() = %d, want %d", l.Size(), end)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var got []Record
	res, err := Replay(path, func(r Record) error { got = append(got, r); return nil })
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if !reflect.DeepEqual(got, recs) {
		t.Fatalf("replayed %d records, want %d:\n got %+v\nwant %+v", len(got), len(recs), got, recs)
	}
	want := ReplayResult{Records: len(recs), Bytes: end}
	if res != want {
		t.Errorf("result %+v, want %+v", res, want)
	}
}

func TestLogfileReopenAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	writeLog(t, path, jobRec("a", 1, Planned))
	writeLog(t, path, jobRec("b", 2, Planned))
	got, _ := readAll(t, path)
	if want := []Record{jobRec("a", 1, Planned), jobRec("b", 2, Planned)}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestReplayMissingFileIsEmpty(t *testing.T) {
	res, err := Replay(filepath.Join(t.TempDir(), "none.log"), func(Record) error {
		t.Fatal("fn called for a missing file")
		return nil
	})
	if err != nil || res != (ReplayResult{}) {
		t.Fatalf("Replay = %+v, %v; want empty, nil", res, err)
	}
}

func TestOpenLogfileCreatesHeaderOnly(t *testing.T) {
	l, path := newLog(t, FsyncAlways)
	if l.Size() != int64(headerSize) {
		t.Errorf("Size() = %d, want %d", l.Size(), headerSize)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "TOCKLOG\x00\x00\x00\x00\x01" {
		t.Fatalf("new file holds %q", b)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600: rules can hold credentials", st.Mode().Perm())
	}
}

func TestOpenLogfileRejectsBadHeader(t *testing.T) {
	for name, content := range map[string]string{
		"bad magic":     "NOTATOCKLOG!",
		"newer version": "TOCKLOG\x00\x00\x00\x00\x02",
		"short garbage": "ab",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.log")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := OpenLogfile(path, FsyncAlways); !errors.Is(err, ErrBadHeader) {
				t.Fatalf("OpenLogfile error %v, want ErrBadHeader", err)
			}
			b, _ := os.ReadFile(path)
			if string(b) != content {
				t.Fatal("OpenLogfile changed a file that is not a tock log")
			}
		})
	}
}

func TestOpenLogfileRepairsTornHeader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	if err := os.WriteFile(path, []byte("TOCK"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeLog(t, path, jobRec("a", 1, Planned))
	got, res := readAll(t, path)
	if len(got) != 1 || res.Trimmed {
		t.Fatalf("got %+v %+v, want the one record", got, res)
	}
}

func TestOpenLogfileRemovesLeftoverCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	if err := os.WriteFile(path+compactSuffix, []byte("half a compaction"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := OpenLogfile(path, FsyncAlways)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := os.Stat(path + compactSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover %s still there: %v", compactSuffix, err)
	}
}

func TestOpenLogfileRejectsUnknownPolicy(t *testing.T) {
	if _, err := OpenLogfile(filepath.Join(t.TempDir(), "x.log"), FsyncPolicy(7)); err == nil {
		t.Fatal("OpenLogfile accepted fsync policy 7")
	}
}

func TestParseFsyncPolicy(t *testing.T) {
	for _, p := range []FsyncPolicy{FsyncAlways, FsyncInterval, FsyncNever} {
		got, err := ParseFsyncPolicy(p.String())
		if err != nil || got != p {
			t.Errorf("ParseFsyncPolicy(%q) = %v, %v", p.String(), got, err)
		}
	}
	if _, err := ParseFsyncPolicy("sometimes"); err == nil {
		t.Error("ParseFsyncPolicy accepted \"sometimes\"")
	}
}

func TestLogfileWriteInvalidBatchWritesNothing(t *testing.T) {
	l, path := newLog(t, FsyncAlways)
	err := l.Write([]Record{jobRec("ok", 1, Planned), ruleRec("bad", "p", RunnerHTTP, "GET")})
	if !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("Write error %v, want ErrInvalidRecord", err)
	}
	if l.Size() != int64(headerSize) || fileSize(t, path) != int64(headerSize) {
		t.Fatalf("a rejected batch left bytes behind: Size %d", l.Size())
	}
}

func TestLogfileClosed(t *testing.T) {
	l, _ := newLog(t, FsyncAlways)
	if err := l.Write([]Record{jobRec("a", 1, Planned)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := l.Sync(); err != nil {
		t.Fatalf("Sync of data made durable by Close: %v", err)
	}
	if err := l.Write([]Record{jobRec("b", 1, Planned)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v, want ErrClosed", err)
	}
}

// If the failed write cannot even be cut back off, the log refuses further
// writes: the next frame would follow garbage.
func TestLogfileUntruncatableWriteFailsLog(t *testing.T) {
	l, path := newLog(t, FsyncAlways)
	ro, err := os.Open(path) // writes and truncates on it fail
	if err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	rw := l.f
	l.f = ro
	l.mu.Unlock()
	if err := l.Write([]Record{jobRec("a", 1, Planned)}); err == nil {
		t.Fatal("Write through a read-only file succeeded")
	}
	l.mu.Lock()
	l.f = rw
	l.mu.Unlock()
	ro.Close()
	err = l.Write([]Record{jobRec("b", 1, Planned)})
	if err == nil || !strings.Contains(err.Error(), "truncate") {
		t.Fatalf("Write after an untruncatable failure: %v, want the sticky truncate error", err)
	}
}

func TestLogfileConcurrentWriteSync(t *testing.T) { // docs/protocol.md, docs/files.md
	l, path := newLog(t, FsyncAlways)
	const writers, each = 32, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := l.Write([]Record{jobRec(fmt.Sprintf("w%d.%d", w, i), int64(i), Planned)}); err != nil {
					errs <- err
					return
				}
				if err := l.Sync(); err != nil {
					errs <- err
					return
				}
				_ = l.Size() // read concurrently with writes, for the race detector
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := readAll(t, path)
	if len(got) != writers*each {
		t.Fatalf("replayed %d records, want %d", len(got), writers*each)
	}
	next := make(map[int]int) // per writer, records must come back in its order
	for _, r := range got {
		var w, i int
		if _, err := fmt.Sscanf(r.Job.ID, "w%d.%d", &w, &i); err != nil {
			t.Fatal(err)
		}
		if i != next[w] {
			t.Fatalf("writer %d: record %d came back where %d was expected", w, i, next[w])
		}
		next[w]++
	}
	t.Logf("%d syncs took %d fsyncs", writers*each, l.fsyncs.Load())
}
