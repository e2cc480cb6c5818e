package store

import (
	"fmt"
	"os"
	"time"
)

// Group commit. Every successful Write advances l.seq. A Sync wants every
// seq up to the one it saw on entry to be durable. One fsync at a time holds
// the token (l.syncing); before it starts it notes the seq it will cover,
// since everything written before the fsync starts is made durable by it.
//
//   - A Sync already covered (l.synced >= target) returns at once.
//   - A Sync that finds an fsync running waits for it, then checks again:
//     usually it was covered; if not, the first waiter to wake takes the
//     token and its one fsync covers every waiter, because all of them
//     wrote before it started.
//
// So N concurrent writers cost about two fsyncs, not N.

// Sync makes every record written so far durable. Under FsyncInterval and
// FsyncNever it is a no-op: durability there is the background goroutine's
// or the kernel's.
func (l *Logfile) Sync() error {
	if l.policy != FsyncAlways {
		return nil
	}
	l.mu.Lock()
	target, journal, jseq, f, size := l.seq, l.journal, l.jseq, l.f, l.size.Load()
	l.mu.Unlock()
	if journal != nil {
		return l.syncJournal(journal, jseq, f, size)
	}
	return l.syncTo(target)
}

// syncJournal is Sync of a journaled log: the journal's fsync (shared with
// every other log of the worker syncing meanwhile) makes the writes up to
// jseq durable, which is everything up to size in this file. Its failure
// fails the log, as a failed fsync of the file would. The fencing check of
// an fsync (is the file still the one at the path?) is made here too.
func (l *Logfile) syncJournal(j *Journal, jseq uint64, f *os.File, size int64) error {
	err := l.failure()
	if err == nil {
		err = j.syncTo(jseq)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		err = l.checkFenceLocked(true)
	}
	if err != nil {
		if l.err == nil {
			l.err = fmt.Errorf("sync %s: %w", l.path, err)
		}
		return l.err
	}
	if l.f == f && size > l.durable { // a compaction since set its own
		l.durable = size
	}
	return nil
}

// syncTo returns once every Write up to target is durable, joining a running
// fsync or starting one.
func (l *Logfile) syncTo(target uint64) error {
	l.smu.Lock()
	for {
		if l.synced >= target {
			l.smu.Unlock()
			return nil
		}
		if err := l.failure(); err != nil {
			l.smu.Unlock()
			return fmt.Errorf("sync %s: %w", l.path, err)
		}
		if !l.syncing {
			break
		}
		l.cond.Wait()
	}
	l.syncing = true
	l.smu.Unlock()

	cover, err := l.fsyncCurrent()
	l.releaseSync(cover)
	return err
}

// failure is why the log can no longer be made durable, if it cannot.
func (l *Logfile) failure() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.usableLocked()
}

// fsyncCurrent fsyncs the current file and returns the seq it covers. The
// caller holds the token, so a compaction cannot swap or close the file
// while the fsync runs.
func (l *Logfile) fsyncCurrent() (uint64, error) {
	l.mu.Lock()
	f, cover, size, err := l.f, l.seq, l.size.Load(), l.usableLocked()
	if err == nil {
		if err = l.checkFenceLocked(true); err != nil {
			l.err = err
		}
	}
	l.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("sync %s: %w", l.path, err)
	}
	if err := l.syncFile(f); err != nil {
		err = fmt.Errorf("sync %s: fsync: %w", l.path, err)
		l.mu.Lock()
		if l.err == nil {
			l.err = err
		}
		l.mu.Unlock()
		return 0, err
	}
	l.mu.Lock()
	if l.f == f && size > l.durable {
		l.durable = size
	}
	l.mu.Unlock()
	return cover, nil
}

// syncFile is the one place the log fsyncs a file.
func (l *Logfile) syncFile(f *os.File) error {
	l.fsyncs.Add(1)
	return l.fsync(f)
}

// acquireSync takes the fsync token, waiting for a running fsync. Close and
// the compaction swap hold it so no fsync runs on a file they close.
func (l *Logfile) acquireSync() {
	l.smu.Lock()
	for l.syncing {
		l.cond.Wait()
	}
	l.syncing = true
	l.smu.Unlock()
}

// releaseSync returns the token, records that every Write up to cover is
// durable (0 = nothing new) and wakes the waiters.
func (l *Logfile) releaseSync(cover uint64) {
	l.smu.Lock()
	l.syncing = false
	if cover > l.synced {
		l.synced = cover
	}
	l.cond.Broadcast()
	l.smu.Unlock()
}

// syncLoop is FsyncInterval's goroutine: on every tick, fsync if anything
// was written since the last fsync. A failure is sticky (see Logfile), so
// the next Write reports it; there is no one to return it to here.
func (l *Logfile) syncLoop(tick <-chan time.Time, stopTicker func()) {
	defer close(l.done)
	defer stopTicker()
	for {
		select {
		case <-l.stop:
			return
		case <-tick:
			l.mu.Lock()
			target := l.seq
			l.mu.Unlock()
			_ = l.syncTo(target) // failure is sticky; see above
		}
	}
}
