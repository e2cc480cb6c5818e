package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// journalEntry is one journaled write: Frames were written at Offset of the
// shard file Name (a base name in the journal's directory) whose FileID
// was FileID.
type journalEntry struct {
	Name   string
	FileID uint64
	Offset int64
	Frames []byte
}

// A journal file is its header (journalMagic, u32 version, boot id) and
// then frames as in a shard log (u32 length, u32 CRC-32C, payload), each
// payload an entry: u8 name length, name, u64 FileID, u64 offset, frames.

// appendJournalEntry appends e as one frame.
func appendJournalEntry(dst []byte, e journalEntry) ([]byte, error) {
	if len(e.Name) == 0 || len(e.Name) > 255 {
		return dst, fmt.Errorf("journal entry: file name of %d bytes", len(e.Name))
	}
	n := 1 + len(e.Name) + 8 + 8 + len(e.Frames)
	if n > MaxPayload {
		return dst, fmt.Errorf("journal entry of %d bytes over the maximum %d", n, MaxPayload)
	}
	start := len(dst)
	dst = append(dst, make([]byte, frameHeaderSize)...)
	dst = append(dst, byte(len(e.Name)))
	dst = append(dst, e.Name...)
	dst = binary.BigEndian.AppendUint64(dst, e.FileID)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.Offset))
	dst = append(dst, e.Frames...)
	payload := dst[start+frameHeaderSize:]
	binary.BigEndian.PutUint32(dst[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(dst[start+4:], crc32.Checksum(payload, castagnoli))
	return dst, nil
}

// decodeJournalEntry decodes an entry's payload. Frames aliases p.
func decodeJournalEntry(p []byte) (journalEntry, error) {
	if len(p) < 1 {
		return journalEntry{}, errors.New("journal entry: empty")
	}
	n := int(p[0])
	if n == 0 || len(p) < 1+n+16 {
		return journalEntry{}, fmt.Errorf("journal entry: %d bytes cannot hold a name of %d and its place", len(p), n)
	}
	name := string(p[1 : 1+n])
	if name != filepath.Base(name) || name == "." || name == ".." || strings.ContainsRune(name, 0) {
		return journalEntry{}, fmt.Errorf("journal entry: bad file name %q", name)
	}
	off := binary.BigEndian.Uint64(p[1+n+8:])
	if off > 1<<62 {
		return journalEntry{}, fmt.Errorf("journal entry: offset %d", off)
	}
	return journalEntry{Name: name, FileID: binary.BigEndian.Uint64(p[1+n:]), Offset: int64(off), Frames: p[1+n+16:]}, nil
}

// readJournal returns a journal file's boot id and its entries, up to the
// first frame that is torn or damaged: a journal's tail is where a crash
// cut the last append, which was never acknowledged.
func readJournal(path string) (boot []byte, entries []journalEntry, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read journal %s: %w", path, err)
	}
	if len(b) < journalHeaderSize {
		return nil, nil, nil // torn while being created: nothing journaled
	}
	if string(b[:len(journalMagic)]) != journalMagic || binary.BigEndian.Uint32(b[len(journalMagic):]) != journalVersion {
		return nil, nil, fmt.Errorf("read journal %s: %w", path, ErrBadHeader)
	}
	boot = b[len(journalMagic)+4 : journalHeaderSize]
	for off := journalHeaderSize; off+frameHeaderSize <= len(b); {
		n := int(binary.BigEndian.Uint32(b[off:]))
		if n == 0 || n > MaxPayload || off+frameHeaderSize+n > len(b) {
			break
		}
		p := b[off+frameHeaderSize : off+frameHeaderSize+n]
		if crc32.Checksum(p, castagnoli) != binary.BigEndian.Uint32(b[off+4:]) {
			break
		}
		e, err := decodeJournalEntry(p)
		if err != nil {
			break
		}
		entries = append(entries, e)
		off += frameHeaderSize + n
	}
	return boot, entries, nil
}

// RecoverJournals deals with the journals in dir (the shards' directory)
// whose workers are gone, and must run before any shard in dir is
// replayed. A journal of an earlier boot of the machine may hold
// acknowledged writes its shard files lost in a crash: each write is put
// back into its shard file (when the file is still the one written: same
// FileID), the files are fsynced and the journal deleted. A journal of this
// boot was left by a worker that died with the machine up, so its writes
// are in the shard files (the page cache survived); the files are fsynced
// and the journal deleted. Journals of live workers are left alone.
//
// It returns the number of writes put back.
func RecoverJournals(dir string) (int, error) {
	names, err := journalStems(dir)
	if err != nil || len(names) == 0 {
		return 0, err
	}
	lock, err := LockFileWait(filepath.Join(dir, journalRecoverLock), lockWait)
	if err != nil {
		return 0, fmt.Errorf("recover journals: %w", err)
	}
	defer func() { _ = lock.Unlock() }() // released on exit anyway
	names, err = journalStems(dir)       // another recovery may have run meanwhile
	if err != nil {
		return 0, err
	}
	put := 0
	for stem, files := range names {
		owner, err := LockFile(filepath.Join(dir, stem+lockSuffix))
		if errors.Is(err, ErrLocked) {
			continue // its worker is alive
		}
		if err != nil {
			return put, fmt.Errorf("recover journal %s: %w", stem, err)
		}
		n, err := recoverStem(dir, files)
		put += n
		if err != nil {
			_ = owner.Unlock() // the recovery error is what matters
			return put, err
		}
		_ = os.Remove(owner.Path()) // nobody else wants a dead worker's lock
		_ = owner.Unlock()
	}
	return put, nil
}

// journalStems maps each journal's stem to its files, oldest first.
func journalStems(dir string) (map[string][]string, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("recover journals: %w", err)
	}
	out := map[string][]string{}
	for _, de := range des {
		name := de.Name()
		if !strings.HasPrefix(name, "journal-") || !strings.HasSuffix(name, journalSuffix) {
			continue
		}
		stem := strings.TrimSuffix(name, journalSuffix)
		if i := strings.LastIndexByte(stem, '.'); i > 0 {
			stem = stem[:i]
		}
		out[stem] = append(out[stem], filepath.Join(dir, name))
	}
	for _, files := range out {
		sort.Strings(files) // generations are zero-padded
	}
	return out, nil
}

// recoverStem recovers one dead worker's journal files, oldest first.
func recoverStem(dir string, files []string) (int, error) {
	this := bootID()
	put := 0
	touched := map[string]bool{}
	var replay []journalEntry // of an earlier boot, every generation in order
	for _, path := range files {
		boot, entries, err := readJournal(path)
		if err != nil {
			return put, err
		}
		for _, e := range entries {
			touched[e.Name] = true
		}
		if boot != nil && (!bytes.Equal(boot, this) || bytes.Equal(this, make([]byte, 16))) {
			replay = append(replay, entries...)
		}
	}
	if len(replay) > 0 {
		n, err := replayJournal(dir, replay)
		put += n
		if err != nil {
			return put, fmt.Errorf("recover journal %s: %w", files[0], err)
		}
	}
	// Whatever was put back, and whatever the dead worker wrote that only
	// the page cache holds, is made durable before the journal goes.
	for name := range touched {
		if err := syncPath(filepath.Join(dir, name)); err != nil {
			return put, fmt.Errorf("recover journal: %w", err)
		}
	}
	for _, path := range files {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return put, fmt.Errorf("recover journal: %w", err)
		}
	}
	if err := syncDir(dir); err != nil {
		return put, fmt.Errorf("recover journal: %w", err)
	}
	return put, nil
}

// replayJournal writes each entry whose shard file is still the one it
// was written to (same FileID) back into it where it differs. A file that
// needed any write loses what follows its last journaled write: that part
// was never acknowledged (the writer was the file's last one: a later
// owner would have fsynced the file when it opened it, so nothing would
// differ), and it may be the torn remains of the crash.
func replayJournal(dir string, entries []journalEntry) (int, error) {
	type target struct {
		f        *os.File
		fileID   uint64
		end      int64
		repaired bool
	}
	targets := map[string]*target{}
	defer func() {
		for _, t := range targets {
			if t.f != nil {
				_ = t.f.Close() // fsynced by the caller; a read-only use otherwise
			}
		}
	}()
	put := 0
	for _, e := range entries {
		t := targets[e.Name]
		if t == nil {
			path := filepath.Join(dir, e.Name)
			id, err := ReadFileID(path)
			if err != nil {
				return put, err
			}
			t = &target{fileID: id}
			targets[e.Name] = t
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if errors.Is(err, fs.ErrNotExist) {
				t.fileID = ^uint64(0) // gone: nothing to put back into
				continue
			}
			if err != nil {
				return put, fmt.Errorf("open %s: %w", path, err)
			}
			t.f = f
		}
		if t.f == nil || e.FileID != t.fileID {
			continue // the file was replaced (a compaction) since: it has it all
		}
		have := make([]byte, len(e.Frames))
		n, err := t.f.ReadAt(have, e.Offset)
		if err != nil && !errors.Is(err, io.EOF) {
			return put, fmt.Errorf("read %s at %d: %w", e.Name, e.Offset, err)
		}
		t.end = max(t.end, e.Offset+int64(len(e.Frames)))
		if n == len(have) && bytes.Equal(have, e.Frames) {
			continue
		}
		if _, err := t.f.WriteAt(e.Frames, e.Offset); err != nil {
			return put, fmt.Errorf("write %s at %d: %w", e.Name, e.Offset, err)
		}
		t.repaired = true
		put++
	}
	for name, t := range targets {
		if t.repaired {
			if err := t.f.Truncate(t.end); err != nil {
				return put, fmt.Errorf("truncate %s to %d: %w", name, t.end, err)
			}
		}
	}
	return put, nil
}

// syncPath fsyncs the file at path, if there is one.
func syncPath(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}
