package master

import (
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tockd/tock/ipc"
)

var callSeq atomic.Uint64

// WorkerCallResult is one worker's answer to a control call.
type WorkerCallResult struct {
	Index  int             `json:"index"`
	PID    int             `json:"pid"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// CallWorkers asks every live worker the control query method
// ("gc-stats", "backtraces", "compact") and collects the answers, waiting
// at most timeout for each.
func (m *Master) CallWorkers(method string, timeout time.Duration) []WorkerCallResult {
	m.mu.Lock()
	var procs []*proc
	for _, s := range m.slots {
		if s.cur != nil {
			procs = append(procs, s.cur)
		}
		procs = append(procs, s.old...)
	}
	m.mu.Unlock()
	out := make([]WorkerCallResult, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Add(1)
		go func(i int, p *proc) {
			defer wg.Done()
			res, err := p.call(method, timeout)
			out[i] = WorkerCallResult{Index: p.index, PID: p.pid, Result: res}
			if err != nil {
				out[i].Error = err.Error()
			}
		}(i, p)
	}
	wg.Wait()
	return out
}

func (p *proc) call(method string, timeout time.Duration) (json.RawMessage, error) {
	id := callSeq.Add(1)
	ch := make(chan ipc.CallReply, 1)
	p.mu.Lock()
	if p.dead {
		p.mu.Unlock()
		return nil, errors.New("worker is gone")
	}
	p.calls[id] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.calls, id)
		p.mu.Unlock()
	}()
	if err := p.link.PostJSON(ipc.TypeCall, ipc.Call{ID: id, Method: method}); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		if r.Error != "" {
			return r.Result, errors.New(r.Error)
		}
		return r.Result, nil
	case <-p.linkDone:
		return nil, errors.New("worker exited")
	case <-time.After(timeout):
		return nil, errors.New("no answer in time")
	}
}
