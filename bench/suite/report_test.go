package suite

import (
	"bytes"
	"encoding/json"
	"image/png"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tockd/tock/bench"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0}, {[]float64{5}, 5}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{7, 7, 1}, 7},
	} {
		in := append([]float64(nil), tc.in...)
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Fatalf("Median reordered its input: %v", tc.in)
			}
		}
	}
}

func TestParseShape(t *testing.T) {
	for in, want := range map[string]Shape{"16x64": {16, 64}, "1x1": {1, 1}, "16×1": {16, 1}} {
		if got, err := ParseShape(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"", "16", "x4", "0x1", "1x0", "-1x2", "16x64x2", "a x b", "16 x64", "016x1"} {
		if got, err := ParseShape(in); err == nil {
			t.Errorf("%q accepted as %v", in, got)
		}
	}
	if s := (Shape{16, 64}).String(); s != "16×64" {
		t.Fatalf("String %q", s)
	}
}

// hist returns a histogram holding n latencies of d.
func hist(n int, d time.Duration) *bench.Histogram {
	h := &bench.Histogram{}
	for range n {
		h.Record(d)
	}
	return h
}

// testReport is a report of two targets at two shapes, 3 repetitions, one
// of tock's failed.
func testReport() *Report {
	r := newReport(Options{Reps: 3, RunTime: time.Second, Shapes: []Shape{{16, 64}, {1, 1}}})
	for _, name := range []string{"echo", "tock-memory"} {
		tg, ok := targetByName(name)
		if !ok {
			panic(name)
		}
		r.addTarget(tg)
	}
	r.Host = Host{CPUs: 2, Kernel: "6.1", Go: "go1.26.8", Versions: map[string]string{"tock": "tock dev"}}
	add := func(target, shape string, rep int, rps, coreUS float64, lat time.Duration, errMsg string) {
		m := Measurement{Target: target, Shape: shape, Rep: rep, Requests: 1000, Throughput: rps,
			CoreUSPerRequest: coreUS, P50Ns: lat.Nanoseconds(), P99Ns: lat.Nanoseconds(), Error: errMsg, hist: hist(1000, lat)}
		r.add(m)
	}
	for rep, f := range []float64{1, 0.9, 1.2} {
		add("echo", "16×64", rep+1, 3_000_000*f, 0.2, 300*time.Microsecond, "")
		add("echo", "1×1", rep+1, 50_000*f, 11, 15*time.Microsecond, "")
	}
	add("tock-memory", "16×64", 1, 400_000, 3.5, 5*time.Millisecond, "")
	add("tock-memory", "16×64", 2, 420_000, 3.3, 5*time.Millisecond, "")
	add("tock-memory", "16×64", 3, 1, 99, time.Second, "3 of 1000 requests failed")
	add("tock-memory", "1×1", 1, 6_250, 120, 150*time.Microsecond, "")
	add("tock-memory", "1×1", 2, 6_000, 130, 160*time.Microsecond, "")
	add("tock-memory", "1×1", 3, 6_500, 125, 140*time.Microsecond, "")
	r.Started = time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	r.Finished = r.Started.Add(3 * time.Minute)
	r.aggregate()
	return r
}

func TestAggregate(t *testing.T) {
	r := testReport()
	if len(r.Rows) != 4 {
		t.Fatalf("%d rows: %+v", len(r.Rows), r.Rows)
	}
	echo, tock := r.Rows[0], r.Rows[1]
	if echo.Target != "echo" || echo.Shape != "16×64" || echo.Runs != 3 || echo.Throughput != 3_000_000 || echo.XEcho != 1 {
		t.Fatalf("echo row %+v", echo)
	}
	// The failed repetition is left out of the medians, and named.
	if tock.Runs != 2 || tock.Throughput != 410_000 || math.Abs(tock.CoreUS-3.4) > 1e-9 || !strings.Contains(tock.Failed, "rep 3") {
		t.Fatalf("tock row %+v", tock)
	}
	if want := 410_000.0 / 3_000_000; math.Abs(tock.XEcho-want) > 1e-12 {
		t.Fatalf("× echo %v, want %v", tock.XEcho, want)
	}
	// Percentiles come from the merged histograms of the good runs.
	if d := time.Duration(tock.P99Ns); d < 4900*time.Microsecond || d > 5100*time.Microsecond {
		t.Fatalf("tock p99 %s", d)
	}
	serial := r.Rows[3]
	if serial.Shape != "1×1" || serial.Throughput != 6_250 || serial.XEcho != 6_250.0/50_000 || serial.CoreUS != 125 {
		t.Fatalf("1×1 row %+v", serial)
	}
	if !r.Failed() {
		t.Fatal("Failed() with a failed run")
	}
}

// TestAggregateFromJSON: results.json holds no histograms; a report decoded
// from it aggregates to the median runs' percentiles.
func TestAggregateFromJSON(t *testing.T) {
	b, err := json.Marshal(testReport())
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	r.aggregate()
	if p50 := time.Duration(r.Rows[3].P50Ns); p50 != 150*time.Microsecond {
		t.Fatalf("1×1 p50 from JSON %s", p50)
	}
	if r.Rows[1].Throughput != 410_000 {
		t.Fatalf("row %+v", r.Rows[1])
	}
}

func TestTable(t *testing.T) {
	got := testReport().Table()
	want := `| target | shape | k req/s (median) | × echo | server core-µs / request | p50 | p99 |
|---|---|---:|---:|---:|---:|---:|
| Go echo server (the ceiling) | 16×64 | 3,000 | 1.00 | 0.20 | 300 µs | 300 µs |
| tock SET, persistence = memory | 16×64 | 410 | 0.14 | 3.40 | 5.00 ms | 5.00 ms |
| Go echo server (the ceiling) | 1×1 | 50.0 | 1.00 | 11.00 | 15 µs | 15 µs |
| tock SET, persistence = memory | 1×1 | 6.25 | 0.12 | 125 | 150 µs | 160 µs |
`
	if got != want {
		t.Fatalf("table:\n%s\nwant:\n%s", got, want)
	}
	md := testReport().Markdown()
	for _, s := range []string{"# Benchmark results", "2 CPUs", "tock dev", want, "3 repetitions of about 1s",
		"tock-memory at 16×64: 2 good runs; rep 3: 3 of 1000 requests failed"} {
		if !strings.Contains(md, s) {
			t.Errorf("results.md lacks %q:\n%s", s, md)
		}
	}
}

func TestFormats(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{fmtKRate(3_696_400), "3,696"}, {fmtKRate(41_234), "41.2"}, {fmtKRate(6_249), "6.25"}, {fmtKRate(0), "0.00"},
		{fmtRatio(1), "1.00"}, {fmtRatio(0.0512), "0.051"}, {fmtRatio(0), "–"},
		{fmtCoreUS(1.214), "1.21"}, {fmtCoreUS(375.2), "375"},
		{fmtLatency(1200), "1.2 µs"}, {fmtLatency(113_000), "113 µs"}, {fmtLatency(2_500_000), "2.50 ms"},
		{fmtLatency(56_200_000), "56.2 ms"}, {fmtLatency(2_000_000_000), "2.00 s"}, {fmtLatency(0), "–"},
		{groupThousands(1234567), "1,234,567"}, {groupThousands(12), "12"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestChart(t *testing.T) {
	r := testReport()
	b, err := Chart(r)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if w, h := img.Bounds().Dx(), img.Bounds().Dy(); w != chartWidth || h != chartTop+chartBottom+2*(panelHeader+10)+4*rowHeight {
		t.Fatalf("chart %dx%d", w, h)
	}
	// The first bar (echo, the longest) is drawn in echo's colour, and the
	// second (tock) in tock's, at the left edge of the bar area.
	at := func(row int) (uint32, uint32, uint32) {
		r, g, b, _ := img.At(barLeft+1, chartTop+panelHeader+row*rowHeight+2+barHeight/2).RGBA()
		return r >> 8, g >> 8, b >> 8
	}
	for row, fam := range []string{"echo", "tock"} {
		c := familyColor[fam]
		if r, g, b := at(row); r != uint32(c.R) || g != uint32(c.G) || b != uint32(c.B) {
			t.Errorf("bar %d: colour %d,%d,%d, want %s's %v", row, r, g, b, fam, c)
		}
	}
	ax := newLogAxis(r.Rows)
	if ax.lo != 1e3 || ax.hi != 1e7 || ax.x(1e3) != 0 || ax.x(1e7) != barWidth || ax.x(1e5) != barWidth/2 {
		t.Fatalf("axis %+v", ax)
	}
	if ax := newLogAxis([]Row{{Throughput: 1020}, {Throughput: 2.7e6}}); ax.lo != 100 || ax.hi != 1e7 {
		t.Fatalf("a bar just above a decade gets the decade below: %+v", ax)
	}
	// An empty report still draws.
	if _, err := Chart(newReport(Options{Shapes: DefaultShapes})); err != nil {
		t.Fatal(err)
	}
}

func TestUpdateReadme(t *testing.T) {
	r := testReport()
	r.Command, r.Commit = "bench/run.sh -readme README.md", "abc1234"
	in := []byte("# tock\n\n## Performance\n\nIntro.\n\n" + ReadmeStart + "\nold table\n" + ReadmeEnd + "\n\n## Next\n")
	out, err := r.UpdateReadme(in, "bench/results")
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{"# tock\n\n## Performance\n\nIntro.\n\n" + ReadmeStart + "\nMeasured 2026-12-04 on 2 CPUs, tock at abc1234",
		r.Summary(), "![benchmark chart](bench/results/chart.png)", "[bench/results/results.md](bench/results/results.md)",
		"Reproduce: `bench/run.sh -readme README.md`\n" + ReadmeEnd + "\n\n## Next\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("README lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "old table") {
		t.Errorf("old table kept:\n%s", s)
	}
	again, err := r.UpdateReadme(out, "bench/results")
	if err != nil || string(again) != s {
		t.Fatalf("second update differs: %v\n%s", err, again)
	}
	for _, bad := range []string{"no markers", ReadmeEnd + " " + ReadmeStart, ReadmeStart + " only"} {
		if _, err := r.UpdateReadme([]byte(bad), "x"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSummary(t *testing.T) {
	got := testReport().Summary()
	want := `| target | 16×64 k req/s (× echo) | core-µs | p50 | 1×1 k req/s (× echo) | core-µs | p50 |
|---|---:|---:|---:|---:|---:|---:|
| Go echo server (the ceiling) | 3,000 (1.00) | 0.20 | 300 µs | 50.0 (1.00) | 11.00 | 15 µs |
| tock SET, persistence = memory | 410 (0.14) | 3.40 | 5.00 ms | 6.25 (0.12) | 125 | 150 µs |
`
	if got != want {
		t.Fatalf("summary:\n%s\nwant:\n%s", got, want)
	}
}
