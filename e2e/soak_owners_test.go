//go:build soak

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tockd/tock/master"
)

// ownerSampler checks, over and over while the chaos runs, that no shard
// has two owners, in two ways:
//   - the OS: which processes hold each shards/NNN.log — the holders of a
//     lock on NNN.log.lock (/proc/locks) when a lock is there, otherwise the tock
//     processes that have it open for writing (/proc/PID/fdinfo);
//   - the stats tree: the shards each worker says it owns.
type ownerSampler struct {
	shardsDir string
	bin       string
	stats     func() (master.Stats, error)

	mu          sync.Mutex
	osSamples   int
	lockSamples int // OS samples that saw a lock on a shard file
	osDouble    int
	statSamples int
	statDouble  int
	first       []string      // the first violations, for the report
	lastShards  map[int][]int // per worker pid, the shards it owned when last seen
}

// run samples every interval until stop closes.
func (o *ownerSampler) run(stop <-chan struct{}, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		o.sampleOS()
		if n%2 == 0 {
			o.sampleStats()
		}
	}
}

func (o *ownerSampler) violation(format string, args ...any) {
	if len(o.first) < 20 {
		o.first = append(o.first, time.Now().UTC().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
	}
}

func (o *ownerSampler) sampleOS() {
	writers := shardWriters(o.bin, o.shardsDir)
	locks := shardLocks()
	ents, err := os.ReadDir(o.shardsDir)
	if err != nil {
		return // not created yet
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.osSamples++
	sawLock := false
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".log") {
			continue
		}
		path := filepath.Join(o.shardsDir, e.Name())
		holders, how := writers[path], "open for writing"
		// The owning worker flocks NNN.log.lock beside its log (see
		// docs/operations.md, "Fencing"); a lock on the log itself counts too.
		for _, locked := range []string{path + ".lock", path} {
			st, err := os.Stat(locked)
			if err != nil {
				continue
			}
			if l := locks[lockKey(st.Sys().(*syscall.Stat_t))]; len(l) > 0 {
				holders, how, sawLock = l, "locked", true
				break
			}
		}
		if len(holders) > 1 {
			o.osDouble++
			o.violation("%s %s by pids %v", e.Name(), how, holders)
		}
	}
	if sawLock {
		o.lockSamples++
	}
}

func (o *ownerSampler) sampleStats() {
	st, err := o.stats()
	if err != nil {
		return // the master is down or restarting
	}
	owners := map[int][]int{}
	for _, w := range st.WorkerStatus {
		for _, sh := range w.Shards {
			owners[sh] = append(owners[sh], w.PID)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.statSamples++
	if o.lastShards == nil {
		o.lastShards = map[int][]int{}
	}
	for _, w := range st.WorkerStatus {
		if len(w.Shards) > 0 {
			o.lastShards[w.PID] = w.Shards
		}
	}
	for sh, pids := range owners {
		if len(pids) > 1 {
			o.statDouble++
			o.violation("stats tree: shard %d owned by workers %v", sh, pids)
		}
	}
}

// shardsOf is the shards pid owned when the stats tree last showed it.
func (o *ownerSampler) shardsOf(pid int) []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lastShards[pid]
}

func (o *ownerSampler) summary() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return fmt.Sprintf("%d OS samples (%d saw shard locks), %d with two holders of a shard; %d stats-tree samples, %d with two owners of a shard",
		o.osSamples, o.lockSamples, o.osDouble, o.statSamples, o.statDouble)
}

// shardWriters maps each shard logfile to the processes running bin that
// have it open for writing. A file replaced by a compaction shows as
// "(deleted)" and is not counted: nothing reads it again.
func shardWriters(bin, shardsDir string) map[string][]int {
	out := map[string][]int{}
	for _, pid := range processesWithBinary(bin) {
		if threads(pid) < 2 {
			// A worker's child between fork and exec still runs the
			// tock binary and shares its fds for an instant; a running
			// Go program always has more than one thread.
			continue
		}
		fdDir := fmt.Sprintf("/proc/%d/fd", pid)
		ents, err := os.ReadDir(fdDir)
		if err != nil {
			continue // exited meanwhile
		}
		for _, e := range ents {
			target, err := os.Readlink(filepath.Join(fdDir, e.Name()))
			if err != nil || filepath.Dir(target) != shardsDir || !strings.HasSuffix(target, ".log") {
				continue
			}
			if writable(pid, e.Name()) && !slices.Contains(out[target], pid) {
				out[target] = append(out[target], pid)
			}
		}
	}
	return out
}

// threads is the thread count of pid (0 if it is gone).
func threads(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v)) // 0 on garbage: not counted
			return n
		}
	}
	return 0
}

// writable tells from /proc/PID/fdinfo/FD whether the fd was opened for
// writing (O_WRONLY or O_RDWR).
func writable(pid int, fd string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
			return err == nil && flags&syscall.O_ACCMODE != syscall.O_RDONLY
		}
	}
	return false
}

// shardLocks maps files ("maj:min:inode" as /proc/locks spells them) to the
// pids holding a lock on them, from /proc/locks ("1: FLOCK ADVISORY WRITE
// 4242 08:01:131 0 EOF"; waiters, marked "->", hold nothing).
func shardLocks() map[string][]int {
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return nil
	}
	out := map[string][]int{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[1] == "->" {
			continue
		}
		pid, err := strconv.Atoi(f[4])
		if err != nil {
			continue
		}
		if !slices.Contains(out[f[5]], pid) {
			out[f[5]] = append(out[f[5]], pid)
		}
	}
	return out
}

// lockKey spells a file's device and inode as /proc/locks does.
func lockKey(st *syscall.Stat_t) string {
	dev := uint64(st.Dev)
	major := (dev>>8)&0xfff | (dev>>32)&^uint64(0xfff)
	minor := dev&0xff | (dev>>12)&^uint64(0xff)
	return fmt.Sprintf("%02x:%02x:%d", major, minor, st.Ino)
}
