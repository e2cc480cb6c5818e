package runner

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tockd/tock/store"
)

// BenchmarkHTTPRunner measures executions/s through a Pipeline with
// maxInflight 64 (the max_inflight default) and the real Dispatcher against
// a local httptest server answering 204.
func BenchmarkHTTPRunner(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	d := New(Config{}, nil)
	defer d.Close()
	p := NewPipeline(64, d, nil)
	ex := exec1(store.RunnerHTTP, "job.bench", "POST", srv.URL+"/hook")
	results := make([]Result, 0, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		p.Submit(ex)
	}
	done := 0
	for done < b.N {
		<-p.Results()
		results = p.TakeResults(results[:0])
		for _, r := range results {
			if !r.Outcome.Succeeded() {
				b.Fatal(r.Outcome.Error)
			}
		}
		done += len(results)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "exec/s")
	p.Shutdown(context.Background())
}

// BenchmarkShellRunner measures sequential `true` executions through the
// shell runner (/bin/sh -c true): fork+exec, pipes, wait.
func BenchmarkShellRunner(b *testing.B) {
	d := New(Config{}, nil)
	ex := exec1(store.RunnerShell, "job.bench", "true")
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if o := d.Run(context.Background(), ex); !o.Succeeded() {
			b.Fatal(o.Error)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "exec/s")
}
