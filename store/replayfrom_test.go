package store

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestReplayFrom: a read while the log is written, then a read of only what
// came after, sees every record once — including past a partial record
// that the first read stopped at without touching the file.
func TestReplayFrom(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.log")
	lf, err := OpenLogfile(path, FsyncNever)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	job := func(i int) Record {
		return Record{Type: RecordJob, Job: Job{ID: fmt.Sprintf("j%d", i), Execution: int64(i)}}
	}
	for i := 0; i < 10; i++ {
		if err := lf.Write([]Record{job(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// A write in progress: half a frame at the end.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{0, 0, 0, 50, 9})
	f.Close()
	var seen []string
	first, err := ReplayFrom(path, 0, func(r Record) error { seen = append(seen, r.Job.ID); return nil }, false)
	if err != nil || first.Records != 10 {
		t.Fatalf("first read: %+v %v", first, err)
	}
	st, _ := os.Stat(path)
	if st.Size() == first.Bytes {
		t.Fatal("read-only replay trimmed the file")
	}
	// The writer's partial frame was the tail; a repair replay from the
	// offset trims it, as the owner's open would.
	second, err := ReplayFrom(path, first.Bytes, func(r Record) error { seen = append(seen, r.Job.ID); return nil }, true)
	if err != nil || second.Records != 0 || !second.Trimmed {
		t.Fatalf("second read: %+v %v", second, err)
	}
	lf2, err := OpenLogfile(path, FsyncNever)
	if err != nil {
		t.Fatal(err)
	}
	lf2.Write([]Record{job(10), job(11)})
	lf2.Close()
	third, err := ReplayFrom(path, second.Bytes, func(r Record) error { seen = append(seen, r.Job.ID); return nil }, true)
	if err != nil || third.Records != 2 {
		t.Fatalf("third read: %+v %v", third, err)
	}
	if len(seen) != 12 || seen[11] != "j11" {
		t.Fatalf("records: %q", seen)
	}
	if _, err := ReplayFrom(path, 3, nil, false); err == nil {
		t.Fatal("offset inside the header accepted")
	}
}
