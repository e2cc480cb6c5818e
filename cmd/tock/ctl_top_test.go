package main

import (
	"strings"
	"testing"
	"time"

	"github.com/tockd/tock/master"
)

func topTestView() topView {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	st := master.Stats{Version: "0.1.0", PID: 4100, Workers: 2, BootedWorkers: 2, Shards: 16, StartedAt: now.Add(-time.Hour)}
	for i := range 2 {
		w := master.WorkerStats{Index: i, PID: 4101 + i, Booted: true, LastCheckin: now, Shards: []int{i, i + 2}}
		w.LastStatus.JobsTotal, w.LastStatus.RSSBytes = 1000, 20<<20
		st.WorkerStatus = append(st.WorkerStatus, w)
	}
	return topView{target: "unix:///srv/tock-data/control.sock", interval: time.Second, cur: topSample{at: now, st: st}}
}

// TestRenderTop_Width: at every width each line fits, the worker table
// keeps the columns that fit (identity first) and the summary wraps rather
// than losing fields.
func TestRenderTop_Width(t *testing.T) {
	v := topTestView()
	for _, cols := range []int{40, 60, 80, 100, 140, 200} {
		lines := renderTop(v, v.cur.at, cols, 0, false)
		text := strings.Join(lines, "\n")
		for _, l := range lines {
			if n := visibleLen(l); n > cols {
				t.Fatalf("cols %d: line of %d: %q", cols, n, l)
			}
		}
		for _, want := range []string{"IDX", "PID", "STATE", "booted", "4101", "4102", "workers 2 (2 booted, 0 old)", "shards 16", "executions running 0"} {
			if !strings.Contains(text, want) {
				t.Fatalf("cols %d: no %q in\n%s", cols, want, text)
			}
		}
		if cols >= 140 && !strings.Contains(text, "TRIGGERED") {
			t.Fatalf("cols %d: every column should fit:\n%s", cols, text)
		}
		if cols <= 80 && strings.Contains(text, "TRIGGERED") {
			t.Fatalf("cols %d: low-priority columns kept:\n%s", cols, text)
		}
	}
}

// TestRenderTop_Plain: no escape codes and every column, for a pipe.
func TestRenderTop_Plain(t *testing.T) {
	v := topTestView()
	text := strings.Join(renderTop(v, v.cur.at, 0, 0, true), "\n")
	if strings.Contains(text, "\x1b") || strings.Contains(text, "q quits") {
		t.Fatalf("plain output has terminal controls:\n%q", text)
	}
	for _, col := range topColumns {
		if !strings.Contains(text, col.title) {
			t.Fatalf("plain output has no column %s:\n%s", col.title, text)
		}
	}
}
