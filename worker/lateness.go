package worker

import "math/bits"

// latency is a histogram of trigger lateness (fire time − scheduled time)
// in power-of-two buckets of nanoseconds: cheap enough for the tick, exact
// to within a factor of two, which is what a p99 target needs.
type latency struct {
	buckets [64]int64
	count   int64
	max     int64
}

func (l *latency) add(ns int64) {
	if ns < 0 {
		ns = 0
	}
	l.buckets[bits.Len64(uint64(ns))]++
	l.count++
	if ns > l.max {
		l.max = ns
	}
}

// quantile returns the upper bound of the bucket holding quantile q.
func (l *latency) quantile(q float64) int64 {
	if l.count == 0 {
		return 0
	}
	rank := int64(q*float64(l.count-1)) + 1
	var seen int64
	for i, n := range l.buckets {
		seen += n
		if seen >= rank {
			if i == 0 {
				return 0
			}
			return min(int64(1)<<i-1, l.max)
		}
	}
	return l.max
}
