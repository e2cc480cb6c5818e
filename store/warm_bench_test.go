package store

import "testing"

// BenchmarkStoreUpsertWarm is StoreUpsert/new (new ids into a store of
// 1M) done as a worker does it with a read batch of 64 SETs: Warm every id
// of the batch, then Set them. Compare its ns/op with StoreUpsert/new.
func BenchmarkStoreUpsertWarm(b *testing.B) {
	const base, batch = 1_000_000, 64
	j := NewJobs()
	for i := range base {
		j.Set(benchID(i), int64(i))
	}
	fresh := make([]string, 1<<20)
	for i := range fresh {
		fresh[i] = benchID(base + i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer threadCPU(b)()
	var sink uint64
	for i := 0; b.Loop(); {
		if i%batch == 0 {
			if i == len(fresh) {
				b.StopTimer()
				for _, id := range fresh {
					j.Remove(id)
				}
				i = 0
				b.StartTimer()
			}
			var hs [batch]uint64
			for k, id := range fresh[i : i+batch] {
				hs[k] = j.Hash(id)
			}
			for _, h := range hs {
				sink += j.Warm(h)
			}
		}
		j.Set(fresh[i], int64(i*7919%base))
		i++
	}
	if sink == 1 {
		b.Log(sink)
	}
}

// Warm changes nothing: a warmed store answers as before.
func TestWarmChangesNothing(t *testing.T) {
	j := NewJobs()
	for i := range 1000 {
		j.Warm(j.Hash(benchID(i)))
		j.Set(benchID(i), int64(i))
	}
	for i := range 2000 {
		j.Warm(j.Hash(benchID(i)))
		if got, ok := j.Get(benchID(i)); ok != (i < 1000) || ok && got.Execution != int64(i) {
			t.Fatalf("job %d: %+v, %v", i, got, ok)
		}
	}
}
