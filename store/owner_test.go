package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func openShardAt(t *testing.T, path string, epoch uint64, jobs *Jobs) (*Logfile, ShardOpened, error) {
	t.Helper()
	if jobs != nil { // in place, as a worker's boot replays
		return OpenShard(path, ShardOptions{Policy: FsyncAlways, Epoch: epoch, Jobs: jobs})
	}
	return OpenShard(path, ShardOptions{Policy: FsyncAlways, Epoch: epoch, Apply: func(Record) error { return nil }})
}

func mustOpenShard(t *testing.T, path string, epoch uint64) *Logfile {
	t.Helper()
	l, _, err := openShardAt(t, path, epoch, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestOpenShard_SecondWriterRefused: while one process has a shard log
// open, a second open fails loudly (ErrLocked) instead of appending at its
// own offsets; once the first closes, it opens.
func TestOpenShard_SecondWriterRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "000.log")
	first := mustOpenShard(t, path, 1)
	if _, _, err := openShardAt(t, path, 2, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := mustOpenShard(t, path, 2)
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOpenShard_StaleEpochRefused: a file recorded at a higher epoch
// refuses an owner with a lower one; the same or a higher epoch opens.
func TestOpenShard_StaleEpochRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "000.log")
	l := mustOpenShard(t, path, 5)
	if err := l.Write([]Record{jobRec("a", 1, Planned)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openShardAt(t, path, 3, nil); !errors.Is(err, ErrFenced) {
		t.Fatalf("open at a stale epoch: %v, want ErrFenced", err)
	}
	jobs := NewJobs()
	l, opened, err := openShardAt(t, path, 7, jobs)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if opened.Previous.Epoch != 5 || opened.Owner.Epoch != 7 || opened.Owner.FileID == 0 || opened.Owner.FileID != opened.Previous.FileID {
		t.Fatalf("opened %+v", opened)
	}
	if _, ok := jobs.Get("a"); !ok || jobs.Len() != 1 {
		t.Fatalf("replay applied %d jobs, want job a", jobs.Len())
	}
	recs, _ := readAll(t, path)
	var epochs []uint64
	for _, r := range recs {
		if r.Type == RecordOwner {
			epochs = append(epochs, r.Owner.Epoch)
		}
	}
	if len(epochs) != 2 || epochs[0] != 5 || epochs[1] != 7 || recs[0].Type != RecordOwner {
		t.Fatalf("owner records %v (first record %s), want [5 7] first", epochs, recs[0].Type)
	}
}

// TestOpenShard_LegacyFile: a file written before fencing (no owner
// record) opens as epoch 0 with its records intact; the owner's record is
// appended, and the first compaction gives the file an id.
func TestOpenShard_LegacyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "000.log")
	writeLog(t, path, jobRec("a", 1, Planned), jobRec("b", 2, Planned))
	jobs := NewJobs()
	l, opened, err := openShardAt(t, path, 3, jobs)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if opened.Previous != (Owner{}) || jobs.Len() != 2 {
		t.Fatalf("opened %+v with %d jobs", opened, jobs.Len())
	}
	if id, err := ReadFileID(path); err != nil || id != 0 {
		t.Fatalf("legacy file id %d, %v; want 0", id, err)
	}
	if err := l.Compact(jobs.Records(nil)); err != nil {
		t.Fatal(err)
	}
	id, err := ReadFileID(path)
	if err != nil || id == 0 || id != l.Owner().FileID {
		t.Fatalf("file id after compaction %x (%v), log says %x", id, err, l.Owner().FileID)
	}
}

// TestCompaction_NewFileID: every compaction writes a file with a new id
// and the same epoch, so a read-ahead of the old file is never taken for
// the new one, even when the new file reuses the old one's inode.
func TestCompaction_NewFileID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "000.log")
	l := mustOpenShard(t, path, 9)
	defer l.Close()
	seen := map[uint64]bool{}
	for i := 0; i < 3; i++ {
		id, err := ReadFileID(path)
		if err != nil || id == 0 || seen[id] {
			t.Fatalf("compaction %d: file id %x (%v), seen before: %v", i, id, err, seen[id])
		}
		seen[id] = true
		if err := l.Write([]Record{jobRec("a", int64(i), Planned)}); err != nil {
			t.Fatal(err)
		}
		if err := l.Compact([]Record{jobRec("a", int64(i), Planned)}); err != nil {
			t.Fatal(err)
		}
	}
	_, owner, err := ReplayShard(path, 0, nil, false)
	if err != nil || owner.Epoch != 9 {
		t.Fatalf("after compactions the owner is %+v (%v), want epoch 9", owner, err)
	}
}

// TestLogfile_ForeignWriteFenced: bytes appended to a fenced log's file by
// anyone else fail the next write (ErrFenced) instead of being written
// after; so does a file put at its path by someone else, at the next sync.
func TestLogfile_ForeignWriteFenced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "000.log")
	l := mustOpenShard(t, path, 1)
	defer l.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("intruder")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := l.Write([]Record{jobRec("a", 1, Planned)}); !errors.Is(err, ErrFenced) {
		t.Fatalf("write after a foreign append: %v, want ErrFenced", err)
	}

	path2 := filepath.Join(dir, "001.log")
	l2 := mustOpenShard(t, path2, 1)
	defer l2.Close()
	if err := l2.Write([]Record{jobRec("a", 1, Planned)}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path2+".other", []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path2+".other", path2); err != nil {
		t.Fatal(err)
	}
	if err := l2.Sync(); !errors.Is(err, ErrFenced) {
		t.Fatalf("sync after the file was replaced: %v, want ErrFenced", err)
	}
}

// TestOwnerRecordRoundTrip: the owner record encodes and decodes, and is
// not a ztick record.
func TestOwnerRecordRoundTrip(t *testing.T) {
	r := Record{Type: RecordOwner, Owner: Owner{FileID: 0xdeadbeefcafef00d, Epoch: 1<<32 | 7}}
	b, err := AppendRecord(nil, r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRecord(b)
	if err != nil || got.Type != r.Type || got.Owner != r.Owner {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, r)
	}
	if _, err := DecodeZtickRecord(b); err == nil {
		t.Fatal("ztick decoder accepted an owner record")
	}
}

// BenchmarkFencing compares a plain log with a fenced one (OpenShard: a
// size check before each write, a path check before each fsync), in the
// same run: Write alone (fsync never) and Write+Sync (fsync always).
func BenchmarkFencing(b *testing.B) {
	for _, policy := range []FsyncPolicy{FsyncNever, FsyncAlways} {
		for _, fenced := range []bool{false, true} {
			b.Run(fmt.Sprintf("fsync=%s/fenced=%v", policy, fenced), func(b *testing.B) {
				path := filepath.Join(b.TempDir(), "b.log")
				var l *Logfile
				var err error
				if fenced {
					l, _, err = OpenShard(path, ShardOptions{Policy: policy, Epoch: 1})
				} else {
					l, err = OpenLogfile(path, policy)
				}
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				rec := []Record{jobRec("bench.job.000001", 1764000000000000000, Planned)}
				b.ResetTimer()
				for range b.N {
					if err := l.Write(rec); err != nil {
						b.Fatal(err)
					}
					if err := l.Sync(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
