package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsCoverEveryValue(t *testing.T) {
	prev := -1
	for _, v := range values() {
		i := bucketOf(v)
		if i < prev {
			t.Fatalf("bucketOf(%d) = %d < bucket of a smaller value %d", v, i, prev)
		}
		prev = i
		lo, w := bucketRange(i)
		if v < 1<<maxBits && (v < lo || v >= lo+w) {
			t.Fatalf("value %d in bucket %d = [%d, %d)", v, i, lo, lo+w)
		}
		if w > 1 && float64(w)/float64(lo) > 1.0/subCount+1e-12 {
			t.Fatalf("bucket %d [%d, +%d) wider than 1/%d of its bound", i, lo, w, subCount)
		}
	}
	if i := bucketOf(1 << 62); i != nBuckets-1 {
		t.Fatalf("huge value in bucket %d, want the last %d", i, nBuckets-1)
	}
}

// values returns an increasing sample of int64s: every value up to 4096,
// then every power of two and its neighbours.
func values() []int64 {
	var vs []int64
	for v := int64(0); v <= 4096; v++ {
		vs = append(vs, v)
	}
	for s := 13; s < 62; s++ {
		p := int64(1) << s
		vs = append(vs, p-1, p, p+1, p+p/3)
	}
	return vs
}

func TestQuantilesAgainstSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dist := range []struct {
		name string
		gen  func() time.Duration
	}{
		{"uniform 1µs-10ms", func() time.Duration { return time.Microsecond + time.Duration(rng.Int64N(int64(10*time.Millisecond))) }},
		{"exponential mean 100µs", func() time.Duration { return time.Duration(rng.ExpFloat64() * 100e3) }},
		{"bimodal", func() time.Duration {
			if rng.IntN(100) == 0 {
				return 50*time.Millisecond + time.Duration(rng.Int64N(1e6))
			}
			return 20*time.Microsecond + time.Duration(rng.Int64N(5e3))
		}},
	} {
		t.Run(dist.name, func(t *testing.T) {
			var h Histogram
			vals := make([]time.Duration, 200_000)
			for i := range vals {
				vals[i] = dist.gen()
				h.Record(vals[i])
			}
			slices.Sort(vals)
			if h.Count() != uint64(len(vals)) || h.Max() != vals[len(vals)-1] || h.Min() != vals[0] {
				t.Fatalf("count %d max %s min %s, want %d %s %s", h.Count(), h.Max(), h.Min(), len(vals), vals[len(vals)-1], vals[0])
			}
			for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 0.9999} {
				exact := vals[int(math.Ceil(q*float64(len(vals))))-1] // rank ceil(q·n)
				got := h.Quantile(q)
				if d := float64(got-exact) / float64(exact); d > 0.01 || d < -0.01 {
					t.Errorf("q%.4f = %s, exact %s (%.2f%% off)", q, got, exact, d*100)
				}
			}
			if h.Quantile(0) != vals[0] || h.Quantile(1) != vals[len(vals)-1] {
				t.Errorf("q0 %s q1 %s, want %s %s", h.Quantile(0), h.Quantile(1), vals[0], vals[len(vals)-1])
			}
		})
	}
}

func TestQuantileSmallCounts(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram is not all zero")
	}
	for _, v := range []time.Duration{10, 20, 30, 40, 50, 60, 70, 80, 90, 100} {
		h.Record(v)
	}
	// Exact below 128 ns: rank ceil(q·10).
	for q, want := range map[float64]time.Duration{0.1: 10, 0.5: 50, 0.51: 60, 0.9: 90, 0.99: 100} {
		if got := h.Quantile(q); got != want {
			t.Errorf("q%.2f = %d, want %d", q, got, want)
		}
	}
	if h.Mean() != 55 {
		t.Errorf("mean %d, want 55", h.Mean())
	}
	h.Record(-5)
	if h.Min() != 0 {
		t.Errorf("negative value recorded as %d, want 0", h.Min())
	}
}

func TestMerge(t *testing.T) {
	var a, b, all Histogram
	for i := range 10_000 {
		d := time.Duration(i) * time.Microsecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	a.Merge(nil)
	if a != all {
		t.Fatalf("merged histogram differs: n %d/%d max %s/%s", a.Count(), all.Count(), a.Max(), all.Max())
	}
	var empty Histogram
	empty.Merge(&all)
	if empty.Quantile(0.99) != all.Quantile(0.99) || empty.Min() != 0 {
		t.Fatalf("merge into empty: p99 %s min %s", empty.Quantile(0.99), empty.Min())
	}
}
