package worker

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tockd/tock/store"
)

func writeShard(t *testing.T, path string, epoch uint64, recs ...store.Record) {
	t.Helper()
	l, _, err := store.OpenShard(path, store.ShardOptions{Policy: store.FsyncAlways, Epoch: epoch})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Write(recs); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestTakeStaged_SameInodeOtherFile: a read-ahead is not used for a file
// that is another one under the same inode (as after two compactions
// between Prepare and Acquire, when the filesystem reuses the inode):
// validity is the file id, not the inode (regression: inode and size
// matched, and the new owner skipped the new file's first records).
func TestTakeStaged_SameInodeOtherFile(t *testing.T) {
	dir := t.TempDir()
	set := testSettings(dir)
	path := ShardPath(dir, 0)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	writeShard(t, path, 1, jobRec("a", 1))
	w := &Worker{set: set, staged: map[int]staged{0: readAhead(set, 0)}}
	if w.staged[0].err != nil || w.staged[0].offset == 0 {
		t.Fatalf("read-ahead: %+v", w.staged[0])
	}
	if w.takeStaged(0) == nil {
		t.Fatal("a read-ahead of the unchanged file was not taken")
	}
	w.staged[0] = readAhead(set, 0)
	// Another file, rewritten into the same inode, at least as long.
	other := path + ".other"
	writeShard(t, other, 2, jobRec("b", 2), jobRec("c", 3), jobRec("d", 4))
	b, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil { // same inode: truncate and write
		t.Fatal(err)
	}
	if st := w.takeStaged(0); st != nil {
		t.Fatalf("read-ahead taken for another file (offset %d): the new owner would skip its first records", st.offset)
	}
}

func jobRec(id string, exec int64) store.Record {
	return store.Record{Type: store.RecordJob, Job: store.Job{ID: id, Execution: exec, Status: store.Planned}}
}
