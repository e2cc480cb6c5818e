package worker

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
)

// fakeMaster drives one in-process worker over a real socketpair, as the
// master does: it speaks the handshake, sends requests and control
// messages and reads what the worker sends back.
type fakeMaster struct {
	t      *testing.T
	link   *ipc.Link // the master's end
	wlink  *ipc.Link // the worker's end
	frames chan ipc.Frame
	done   chan error // Run's result
	seq    uint64
}

// testSettings is a logfile-backed worker in dir with fsync always.
func testSettings(dir string) ipc.Settings {
	return ipc.Settings{
		DataDir: dir, Persistence: "logfile", Fsync: "always", Framerate: 100,
		NumShards: 4, CheckIntervalNs: int64(time.Hour), MaxInflight: 8,
		ExecutionTimeoutNs: int64(time.Minute), ShellPath: "/bin/sh",
	}
}

// startTestWorker runs a worker with opts and hands it shards.
func startTestWorker(t *testing.T, set ipc.Settings, shards []int, rules []store.Rule, opts runOptions) *fakeMaster {
	t.Helper()
	mf, wf, err := ipc.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	ml, err := ipc.FileLink(mf)
	if err != nil {
		t.Fatal(err)
	}
	wl, err := ipc.FileLink(wf)
	if err != nil {
		t.Fatal(err)
	}
	fm := &fakeMaster{t: t, link: ml, wlink: wl, frames: make(chan ipc.Frame, 4096), done: make(chan error, 1)}
	log := hclog.New(&hclog.LoggerOptions{Name: "worker", Level: hclog.Debug, Output: testWriter{t}})
	go func() { fm.done <- run(wl, 0, 0, log, opts) }()
	go func() {
		defer close(fm.frames)
		for {
			f, err := ml.Recv()
			if err != nil {
				return
			}
			fm.frames <- f
		}
	}()
	var h ipc.Hello
	fm.decode(fm.expect(ipc.TypeHello), &h)
	w := ipc.Welcome{Settings: set, Shards: shards, Rules: ipc.Rules{Version: 1, Rules: rules}}
	if err := ml.SendJSON(ipc.TypeWelcome, w); err != nil {
		t.Fatal(err)
	}
	var r ipc.Ready
	fm.decode(fm.expect(ipc.TypeReady), &r)
	if r.Error != "" || len(r.ShardErrors) > 0 {
		t.Fatalf("worker not ready: %+v", r)
	}
	t.Cleanup(func() {
		ml.Abort()
		select {
		case <-fm.done:
		case <-time.After(30 * time.Second):
			t.Error("worker did not stop after its link closed")
		}
	})
	return fm
}

// testWriter sends the worker's log to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// expect returns the next frame of type typ, skipping heartbeats and
// other frames the test does not look for.
func (fm *fakeMaster) expect(typ ipc.Type) ipc.Frame {
	fm.t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case f, ok := <-fm.frames:
			if !ok {
				fm.t.Fatalf("link closed while waiting for %s", typ)
			}
			if f.Type == typ {
				return f
			}
		case <-timeout:
			fm.t.Fatalf("no %s within 30s", typ)
		}
	}
}

func (fm *fakeMaster) decode(f ipc.Frame, v any) {
	fm.t.Helper()
	if err := ipc.DecodeJSON(f.Payload, v); err != nil {
		fm.t.Fatal(err)
	}
}

// send sends a JSON control message.
func (fm *fakeMaster) send(t ipc.Type, v any) {
	fm.t.Helper()
	if err := fm.link.SendJSON(t, v); err != nil {
		fm.t.Fatal(err)
	}
}

// do sends a request and returns its reply.
func (fm *fakeMaster) do(req ipc.Request) ipc.Reply {
	fm.t.Helper()
	fm.seq++
	req.Seq = fm.seq
	if err := fm.link.SendRequest(req); err != nil {
		fm.t.Fatal(err)
	}
	for {
		r, err := ipc.DecodeReply(fm.expect(ipc.TypeReply).Payload)
		if err != nil {
			fm.t.Fatal(err)
		}
		if r.Seq == req.Seq {
			return r
		}
	}
}

// waitStatus polls GET until job has status st.
func (fm *fakeMaster) waitStatus(shard int, job string, st store.Status) {
	fm.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := fm.do(ipc.Request{Op: ipc.OpGet, Shard: shard, Key: job})
		if r.Kind == ipc.KindJob && r.Status == st {
			return
		}
		if time.Now().After(deadline) {
			fm.t.Fatalf("%s is %+v, want %s", job, r, st)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for an event
	}
}

// waitExit waits for Run to return.
func (fm *fakeMaster) waitExit() error {
	fm.t.Helper()
	select {
	case err := <-fm.done:
		fm.done <- err // for Cleanup
		return err
	case <-time.After(30 * time.Second):
		fm.t.Fatal("worker did not return")
		return nil
	}
}

// shellRule runs cmd for every job starting with pattern.
func shellRule(id, pattern, cmd string) store.Rule {
	return store.Rule{ID: id, Pattern: pattern, Runner: store.Runner{Kind: store.RunnerShell, Args: []string{cmd}}}
}

// mkfifo makes a FIFO executions can block on until the test opens it.
func mkfifo(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "gate")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// openGate opens the FIFO for writing and closes it: every execution
// blocked reading it goes on.
func openGate(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

var errInjected = errors.New("injected EIO")
