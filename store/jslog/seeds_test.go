package jslog

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tockd/tock/store"
)

// go test -run TestWriteFuzzSeeds -write-seeds ./store/jslog/ rewrites
// testdata/fuzz from messages as this package writes them.
var writeSeeds = flag.Bool("write-seeds", false, "rewrite the fuzz seed corpora in testdata/fuzz")

func TestWriteFuzzSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -write-seeds to rewrite testdata/fuzz")
	}
	frames, err := store.AppendFrames(nil, []store.Record{jobRec("a", 1), {Type: store.RecordJobRemoval, ID: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	fence := encodeFence(fenceRecord{Epoch: 7, Host: "h1"})
	type msg struct {
		subject, kind, epoch, host, snap string
		seq                              uint64
		data                             []byte
	}
	msgs := map[string]msg{
		"rec":        {"tock.c.s001.rec", KindRec, "7", "h1", "", 12, frames},
		"own":        {"tock.c.s001.own", KindOwn, "7", "h1", "", 11, fence},
		"snap_begin": {"tock.c.s001.rec", KindSnapBegin, "7", "h1", "", 13, nil},
		"snap":       {"tock.c.s001.rec", KindSnap, "7", "h1", "13", 14, frames},
		"snap_end":   {"tock.c.s001.rec", KindSnapEnd, "7", "h1", "13", 15, nil},
		"own_wrong":  {"tock.c.s001.own", KindOwn, "8", "h1", "", 11, fence},
		"rec_cut":    {"tock.c.s001.rec", KindRec, "7", "h1", "", 12, frames[:len(frames)-2]},
		"bad_epoch":  {"tock.c.s001.rec", KindRec, "x", "h1", "", 12, frames},
	}
	for name, m := range msgs {
		writeSeed(t, "FuzzDecodeMessage", name, fmt.Sprintf("string(%q)\nstring(%q)\nstring(%q)\nstring(%q)\nstring(%q)\nuint64(%d)\n[]byte(%q)\n",
			m.subject, m.kind, m.epoch, m.host, m.snap, m.seq, m.data))
	}
	for name, data := range map[string][]byte{
		"fence": fence, "zero_epoch": []byte(`{"epoch":0,"host":"h"}`), "extra": []byte(`{"epoch":1,"host":"h","x":1}`),
		"trailing": append(fence, fence...), "not_json": []byte("epoch=1"),
	} {
		writeSeed(t, "FuzzDecodeFence", name, fmt.Sprintf("[]byte(%q)\n", data))
	}
	for name, script := range map[string][]byte{
		"complete_snapshot":   {0, 1, 2, 0, 3, 3, 4, 3, 0, 5},
		"incomplete_snapshot": {0, 1, 2, 0, 3, 3, 1, 0, 0, 5},
		"fences":              {1, 0, 0, 1, 1, 0, 0, 2},
		"stale_after_fence":   {1, 0x10, 0, 0x01, 0, 0x13, 2, 0x02, 3, 0x14, 4, 0x13},
	} {
		writeSeed(t, "FuzzReplayer", name, fmt.Sprintf("[]byte(%q)\n", script))
	}
}

func writeSeed(t *testing.T, target, name, values string) {
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte("go test fuzz v1\n"+strings.TrimPrefix(values, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
}
