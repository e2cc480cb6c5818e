package config

import (
	"errors"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to Load's decoder (the part of Load after
// reading the file). Seeds in testdata/fuzz/FuzzLoad are real configs: tock's
// example, ztick's example files, and one snippet per rejection.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("[log]\nlevel = \"info\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parse("fuzz.toml", data)
		if err == nil {
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("loaded a config that Validate rejects: %v", verr)
			}
			return
		}
		var ce *Error
		if !errors.As(err, &ce) || len(ce.Problems) == 0 {
			t.Fatalf("error %v is not a *config.Error with problems", err)
		}
		for _, p := range ce.Problems {
			if p.Msg == "" || p.Line < 0 {
				t.Fatalf("bad problem %+v", p)
			}
		}
	})
}
