package main

import (
	"runtime"
	"strings"
	"testing"
)

func TestVersionLine(t *testing.T) {
	pre := "tock " + version + " (" + runtime.Version() + ", commit "
	cases := []struct {
		v    buildVCS
		want string
	}{
		{buildVCS{}, pre + "unknown)"},
		{buildVCS{revision: "f2b3eb8a02053d61e5133266446aa1179831ba52", time: "2026-12-04T19:02:27Z"},
			pre + "f2b3eb8a02053d61e5133266446aa1179831ba52 2026-12-04T19:02:27Z)"},
		{buildVCS{revision: "f2b3eb8", time: "2026-12-04T19:02:27Z", modified: true}, pre + "f2b3eb8 2026-12-04T19:02:27Z (modified))"},
	}
	for _, tc := range cases {
		if got := versionLine(tc.v); got != tc.want {
			t.Errorf("versionLine(%+v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

// TestVCSInfo_LdflagsWin: -ldflags values are used as they are.
func TestVCSInfo_LdflagsWin(t *testing.T) {
	oldC, oldT := commit, commitTime
	t.Cleanup(func() { commit, commitTime = oldC, oldT })
	commit, commitTime = "v1.2.3-abc", "2026-01-01T00:00:00Z"
	v := vcsInfo()
	if v.revision != "v1.2.3-abc" || v.time != "2026-01-01T00:00:00Z" || v.modified {
		t.Fatalf("vcsInfo with -ldflags = %+v", v)
	}
	if got := versionLine(v); !strings.HasSuffix(got, "commit v1.2.3-abc 2026-01-01T00:00:00Z)") {
		t.Fatalf("versionLine = %q", got)
	}
}
