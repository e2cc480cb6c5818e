package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// counter counts the fsyncs of the files it is given to and can fail them.
type counter struct {
	n    atomic.Int64
	fail atomic.Bool
}

var errInjectedFsync = errors.New("injected fsync failure")

func (c *counter) fsync(f *os.File) error {
	c.n.Add(1)
	if c.fail.Load() {
		return errInjectedFsync
	}
	return f.Sync()
}

// journaled opens shards 000..n-1 under dir on journal j, counting their
// own fsyncs in shardSyncs.
func journaled(t *testing.T, dir string, n int, j *Journal, shardSyncs *counter) []*Logfile {
	t.Helper()
	logs := make([]*Logfile, n)
	for i := range logs {
		l, _, err := OpenShard(filepath.Join(dir, fmt.Sprintf("%03d.log", i)), ShardOptions{
			Policy: FsyncAlways, Epoch: 1, Apply: func(Record) error { return nil }, Fsync: shardSyncs.fsync, Journal: j})
		if err != nil {
			t.Fatal(err)
		}
		logs[i] = l
	}
	return logs
}

// syncAll syncs every log concurrently, as the worker's committer does.
func syncAll(logs []*Logfile) []error {
	errs := make([]error, len(logs))
	var wg sync.WaitGroup
	for i, l := range logs {
		wg.Go(func() { errs[i] = l.Sync() })
	}
	wg.Wait()
	return errs
}

// jobIDs replays path and returns the ids of its job records in order.
func jobIDs(t *testing.T, path string) []string {
	t.Helper()
	recs, _, err := ReadAll(path)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range recs {
		if r.Type == RecordJob {
			ids = append(ids, r.Job.ID)
		}
	}
	return ids
}

// TestJournal_OneFsyncPerGroupCommit: a group commit over several journaled
// shard logs costs one fsync of the journal and none of the shard files,
// and each shard file still holds its own records.
func TestJournal_OneFsyncPerGroupCommit(t *testing.T) {
	dir := t.TempDir()
	var js, ss counter
	j, err := OpenJournal(dir, js.fsync)
	if err != nil {
		t.Fatal(err)
	}
	logs := journaled(t, dir, 4, j, &ss)
	js.n.Store(0)
	ss.n.Store(0)
	for round := range 3 {
		for i, l := range logs {
			if err := l.Write([]Record{jobRec(fmt.Sprintf("s%d.r%d", i, round), 1, Planned)}); err != nil {
				t.Fatal(err)
			}
		}
		for _, err := range syncAll(logs) {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := js.n.Load(); got != 3 {
		t.Fatalf("journal fsyncs for 3 group commits over 4 logs: %d, want 3", got)
	}
	if got := ss.n.Load(); got != 0 {
		t.Fatalf("shard file fsyncs: %d, want 0", got)
	}
	for _, l := range logs {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if ss.n.Load() != 4 {
		t.Fatalf("a journaled log is fsynced when it closes: %d fsyncs for 4 closes", ss.n.Load())
	}
	path := j.Path()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("journal of cleanly closed logs is still there: %v", err)
	}
	for i := range logs {
		got := jobIDs(t, filepath.Join(dir, fmt.Sprintf("%03d.log", i)))
		want := []string{fmt.Sprintf("s%d.r0", i), fmt.Sprintf("s%d.r1", i), fmt.Sprintf("s%d.r2", i)}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("shard %d holds %v, want %v", i, got, want)
		}
	}
}

// crash builds, in a new directory, what a disk could hold after the
// machine crashed: the shard files as they were (before) — every write
// since was only in the page cache — with tail appended to each, and the
// journal file as it is (its fsync returned), its boot id that of another
// boot. Nobody holds the journal's lock there.
func crash(t *testing.T, dir string, before map[string][]byte, tail []byte) string {
	t.Helper()
	img := t.TempDir()
	for name, b := range before {
		if err := os.WriteFile(filepath.Join(img, name), append(bytes.Clone(b), tail...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	wals, err := filepath.Glob(filepath.Join(dir, "journal-*"+journalSuffix))
	if err != nil || len(wals) == 0 {
		t.Fatalf("no journal in %s: %v", dir, err)
	}
	for _, w := range wals {
		b, err := os.ReadFile(w)
		if err != nil {
			t.Fatal(err)
		}
		for i := len(journalMagic) + 4; i < journalHeaderSize; i++ {
			b[i] ^= 0xff // another boot
		}
		if err := os.WriteFile(filepath.Join(img, filepath.Base(w)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// snapshot reads the shard files of logs.
func snapshot(t *testing.T, logs []*Logfile) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, l := range logs {
		b, err := os.ReadFile(l.Path())
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(l.Path())] = b
	}
	return out
}

// TestJournal_RecoverAfterMachineCrash: acknowledged writes that reached
// only the journal (the shard files lost them, and what the crash left at
// their ends is torn garbage) are put back into their shard files before
// the shards are replayed; the journal is then gone.
func TestJournal_RecoverAfterMachineCrash(t *testing.T) {
	for name, tail := range map[string][]byte{
		"clean":         nil,
		"torn tail":     {0, 0, 0, 40, 1, 2},
		"zeroed blocks": make([]byte, 4096),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			j, err := OpenJournal(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			logs := journaled(t, dir, 2, j, &counter{})
			before := snapshot(t, logs)
			for round := range 3 {
				for i, l := range logs {
					if err := l.Write([]Record{jobRec(fmt.Sprintf("s%d.r%d", i, round), 1, Planned)}); err != nil {
						t.Fatal(err)
					}
				}
				for _, err := range syncAll(logs) {
					if err != nil {
						t.Fatal(err)
					}
				}
			}
			img := crash(t, dir, before, tail)
			for i := range logs {
				if got := jobIDs(t, filepath.Join(img, fmt.Sprintf("%03d.log", i))); len(got) != 0 && tail == nil {
					t.Fatalf("the crash image already holds %v", got)
				}
			}
			// Opening any shard of the image recovers every journal first.
			l, opened, err := OpenShard(filepath.Join(img, "000.log"), ShardOptions{Policy: FsyncAlways, Epoch: 2, Apply: func(Record) error { return nil }})
			if err != nil {
				t.Fatal(err)
			}
			if opened.Recovered != 6 {
				t.Fatalf("recovered %d writes, want 6", opened.Recovered)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			for i := range logs {
				got := jobIDs(t, filepath.Join(img, fmt.Sprintf("%03d.log", i)))
				want := []string{fmt.Sprintf("s%d.r0", i), fmt.Sprintf("s%d.r1", i), fmt.Sprintf("s%d.r2", i)}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("shard %d after recovery holds %v, want %v", i, got, want)
				}
			}
			if wals, _ := filepath.Glob(filepath.Join(img, "*"+journalSuffix)); len(wals) != 0 {
				t.Fatalf("recovered journal left behind: %v", wals)
			}
			for _, l := range logs {
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestJournal_TornJournalTail: a journal append cut by the crash (never
// acknowledged) is not put back; what precedes it is. The zeros of the
// preallocated file after the last entry are not read as entries.
func TestJournal_TornJournalTail(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := journaled(t, dir, 1, j, &counter{})
	before := snapshot(t, logs)
	for _, id := range []string{"acked", "torn"} {
		if err := logs[0].Write([]Record{jobRec(id, 1, Planned)}); err != nil {
			t.Fatal(err)
		}
		if err := logs[0].Sync(); err != nil {
			t.Fatal(err)
		}
	}
	wal := j.Path()
	b, err := os.ReadFile(wal)
	if err != nil {
		t.Fatal(err)
	}
	j.mu.Lock()
	end := j.size
	j.mu.Unlock()
	// The file is preallocated: its tail is zeros, not records.
	if int64(len(b)) <= end {
		t.Fatalf("journal file of %d bytes for %d journaled: not preallocated", len(b), end)
	}
	if _, entries, err := readJournal(wal); err != nil || len(entries) != 2 {
		t.Fatalf("preallocated journal reads as %d entries (%v), want 2", len(entries), err)
	}
	copy(b[end-3:end], []byte{0, 0, 0}) // the last entry torn
	if err := os.WriteFile(wal, b, 0o600); err != nil {
		t.Fatal(err)
	}
	img := crash(t, dir, before, nil)
	if _, err := RecoverJournals(img); err != nil {
		t.Fatal(err)
	}
	if got := jobIDs(t, filepath.Join(img, "000.log")); fmt.Sprint(got) != "[acked]" {
		t.Fatalf("after recovery: %v, want [acked]", got)
	}
	_ = logs[0].Close()
	_ = j.Close()
}

// TestJournal_ReplacedFileUntouched: a shard file compacted since (a new
// FileID) already holds everything; the journal's writes to the old file
// are not put into the new one.
func TestJournal_ReplacedFileUntouched(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := journaled(t, dir, 1, j, &counter{})
	for _, id := range []string{"a", "b", "c"} {
		if err := logs[0].Write([]Record{jobRec(id, 1, Planned)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := logs[0].Sync(); err != nil {
		t.Fatal(err)
	}
	if err := logs[0].Compact([]Record{jobRec("c", 1, Planned)}); err != nil {
		t.Fatal(err)
	}
	compacted := snapshot(t, logs)
	img := crash(t, dir, compacted, nil)
	n, err := RecoverJournals(img)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("put %d writes into a replaced file", n)
	}
	got, err := os.ReadFile(filepath.Join(img, "000.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, compacted["000.log"]) {
		t.Fatal("recovery changed a file that was replaced since the journal wrote to it")
	}
	_ = logs[0].Close()
	_ = j.Close()
}

// TestJournal_DeadWorkerSameBoot: the journal of a worker that died with
// the machine up is not needed (the page cache has its writes): recovery
// fsyncs the shard files, writes nothing and deletes it. A live worker's
// journal is left alone.
func TestJournal_DeadWorkerSameBoot(t *testing.T) {
	dir := t.TempDir()
	live, err := OpenJournal(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := OpenJournal(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := journaled(t, dir, 1, dead, &counter{})
	if err := logs[0].Write([]Record{jobRec("a", 1, Planned)}); err != nil {
		t.Fatal(err)
	}
	if err := logs[0].Sync(); err != nil {
		t.Fatal(err)
	}
	shard := snapshot(t, logs)
	deadPath := dead.Path()
	if err := dead.lock.Unlock(); err != nil { // the worker died: its lock is gone
		t.Fatal(err)
	}
	n, err := RecoverJournals(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("same-boot recovery wrote %d writes", n)
	}
	if _, err := os.Stat(deadPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dead worker's journal still there: %v", err)
	}
	if _, err := os.Stat(live.Path()); err != nil {
		t.Fatalf("live worker's journal: %v", err)
	}
	if got := snapshot(t, logs); !bytes.Equal(got["000.log"], shard["000.log"]) {
		t.Fatal("same-boot recovery changed a shard file")
	}
	_ = logs[0].Close()
	if err := live.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestJournal_FailedFsync: a failed journal fsync fails the logs waiting
// for it and every later write (sticky); on close the logs are cut back to
// what was acknowledged, and the journal to its last good fsync, so no
// recovery brings the failed writes back.
func TestJournal_FailedFsync(t *testing.T) {
	dir := t.TempDir()
	var js counter
	j, err := OpenJournal(dir, js.fsync)
	if err != nil {
		t.Fatal(err)
	}
	logs := journaled(t, dir, 2, j, &counter{})
	for i, l := range logs {
		if err := l.Write([]Record{jobRec(fmt.Sprintf("ok%d", i), 1, Planned)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, err := range syncAll(logs) {
		if err != nil {
			t.Fatal(err)
		}
	}
	good := snapshot(t, logs)
	js.fail.Store(true)
	for i, l := range logs {
		if err := l.Write([]Record{jobRec(fmt.Sprintf("lost%d", i), 1, Planned)}); err != nil {
			t.Fatal(err)
		}
	}
	for i, err := range syncAll(logs) {
		if !errors.Is(err, errInjectedFsync) {
			t.Fatalf("log %d sync after a failed journal fsync: %v", i, err)
		}
		if logs[i].Failed() == nil {
			t.Fatalf("log %d not failed", i)
		}
	}
	js.fail.Store(false)
	if err := logs[0].Write([]Record{jobRec("later", 1, Planned)}); err == nil {
		t.Fatal("write after a failed journal fsync succeeded")
	}
	wal := j.Path()
	for _, l := range logs {
		_ = l.Close() // cut back; the error is the failure
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range logs {
		if got := jobIDs(t, filepath.Join(dir, fmt.Sprintf("%03d.log", i))); fmt.Sprint(got) != fmt.Sprintf("[ok%d]", i) {
			t.Fatalf("shard %d after the failure: %v", i, got)
		}
	}
	_, entries, err := readJournal(wal)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 { // the acknowledged writes (owner records are fsynced in the file)
		t.Fatalf("failed journal keeps %d entries, want 2", len(entries))
	}
	// Even after a crash that lost the shard files' writes, recovery puts
	// back only what was acknowledged.
	img := crash(t, dir, good, nil)
	if _, err := RecoverJournals(img); err != nil {
		t.Fatal(err)
	}
	for i := range logs {
		if got := jobIDs(t, filepath.Join(img, fmt.Sprintf("%03d.log", i))); fmt.Sprint(got) != fmt.Sprintf("[ok%d]", i) {
			t.Fatalf("shard %d recovered after the failure: %v", i, got)
		}
	}
}

// TestJournal_Checkpoint: past journalCheckpointBytes the journal moves to
// a new file, fsyncs the shard files and deletes the old one, so it stays
// small; what it held is in the shard files.
func TestJournal_Checkpoint(t *testing.T) {
	old := journalCheckpointBytes
	journalCheckpointBytes = 512
	t.Cleanup(func() { journalCheckpointBytes = old })
	dir := t.TempDir()
	j, err := OpenJournal(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ss counter
	logs := journaled(t, dir, 2, j, &ss)
	ss.n.Store(0)
	first := j.Path()
	var want [2][]string
	for round := range 40 {
		for i, l := range logs {
			id := fmt.Sprintf("s%d.r%d", i, round)
			want[i] = append(want[i], id)
			if err := l.Write([]Record{jobRec(id, 1, Planned)}); err != nil {
				t.Fatal(err)
			}
		}
		for _, err := range syncAll(logs) {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if j.Path() == first {
		t.Fatal("the journal never moved to a new file")
	}
	if _, err := os.Stat(first); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("checkpointed journal file still there: %v", err)
	}
	if ss.n.Load() == 0 {
		t.Fatal("a checkpoint fsynced no shard file")
	}
	wals, _ := filepath.Glob(filepath.Join(dir, "*"+journalSuffix))
	if len(wals) != 1 {
		t.Fatalf("journal files: %v", wals)
	}
	for _, l := range logs {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range logs {
		if got := jobIDs(t, filepath.Join(dir, fmt.Sprintf("%03d.log", i))); fmt.Sprint(got) != fmt.Sprint(want[i]) {
			t.Fatalf("shard %d: %v", i, got)
		}
	}
}

// TestJournal_FailedAppendCutsShardBack: a write the journal could not
// take is not left in the shard file (it could never be acknowledged, and
// a later write would follow it); a journal that cannot cut itself back is
// failed for good.
func TestJournal_FailedAppendCutsShardBack(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := journaled(t, dir, 1, j, &counter{})
	if err := logs[0].Write([]Record{jobRec("kept", 1, Planned)}); err != nil {
		t.Fatal(err)
	}
	if err := logs[0].Sync(); err != nil { // acknowledged
		t.Fatal(err)
	}
	size := logs[0].Size()
	j.mu.Lock()
	_ = j.f.Close() // every journal write now fails, and so does its truncate
	j.mu.Unlock()
	if err := logs[0].Write([]Record{jobRec("refused", 1, Planned)}); err == nil {
		t.Fatal("a write the journal refused succeeded")
	}
	if fi, err := os.Stat(logs[0].Path()); err != nil || fi.Size() != size || logs[0].Size() != size {
		t.Fatalf("shard file after a refused write: %v bytes (log says %d), want %d (%v)", fi.Size(), logs[0].Size(), size, err)
	}
	if j.Failed() == nil || logs[0].Failed() == nil {
		t.Fatal("a journal that could not cut itself back, or its log, is not failed")
	}
	if err := logs[0].Write([]Record{jobRec("later", 1, Planned)}); err == nil {
		t.Fatal("a write to a failed journal succeeded")
	}
	_ = logs[0].Close()
	_ = j.Close()
	if got := jobIDs(t, filepath.Join(dir, "000.log")); fmt.Sprint(got) != "[kept]" {
		t.Fatalf("shard holds %v, want [kept]", got)
	}
}
