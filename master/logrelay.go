package master

import (
	"bufio"
	"encoding/json"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// logRelay reads a worker's stderr, where it writes hclog JSON lines, and
// re-emits each record through the master's logger at its own level, so
// one process owns the log destination (and its reopening on SIGHUP).
type logRelay struct {
	r, w *os.File
	log  hclog.Logger
	wg   sync.WaitGroup
}

func newLogRelay(log hclog.Logger) (*logRelay, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	return &logRelay{r: r, w: w, log: log}, nil
}

// started closes the master's copy of the write end once the child holds
// its own, and starts relaying.
func (l *logRelay) started() {
	l.w.Close()
	l.wg.Add(1)
	go l.run()
}

func (l *logRelay) run() {
	defer l.wg.Done()
	sc := bufio.NewScanner(l.r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l.emit(sc.Bytes())
	}
}

func (l *logRelay) close() {
	l.wg.Wait()
	l.r.Close()
}

// emit re-logs one line. Non-JSON lines (a Go panic, say) are logged as
// errors so they are never lost.
func (l *logRelay) emit(line []byte) {
	var rec map[string]any
	if len(line) == 0 {
		return
	}
	if err := json.Unmarshal(line, &rec); err != nil {
		lvl := hclog.Info
		s := string(line)
		if strings.HasPrefix(s, "panic:") || strings.HasPrefix(s, "fatal error:") || strings.HasPrefix(s, "goroutine ") {
			lvl = hclog.Error
		}
		l.log.Log(lvl, "worker output", "line", s)
		return
	}
	lvl := hclog.LevelFromString(str(rec["@level"]))
	if lvl == hclog.NoLevel {
		lvl = hclog.Info
	}
	msg := str(rec["@message"])
	name := str(rec["@module"])
	keys := make([]string, 0, len(rec))
	for k := range rec {
		if !strings.HasPrefix(k, "@") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	args := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, k, rec[k])
	}
	lg := l.log
	if name != "" {
		lg = lg.ResetNamed(name)
	}
	lg.Log(lvl, msg, args...)
}

func str(v any) string {
	s, _ := v.(string) // absent or not a string: empty is right
	return s
}
