package main

import (
	"strings"
	"testing"

	"github.com/tockd/tock/store"
)

// TestDump_OwnerRecords: the fencing records of a shard file show up in
// the dump with their epoch and file id, in text and JSON, and verify
// accepts the file.
func TestDump_OwnerRecords(t *testing.T) {
	path := tockLog(t,
		store.Record{Type: store.RecordOwner, Owner: store.Owner{FileID: 0xabc, Epoch: 1<<32 | 1}},
		job("a", 1, store.Planned),
		store.Record{Type: store.RecordOwner, Owner: store.Owner{FileID: 0xabc, Epoch: 1<<32 | 2}},
	)
	out, errOut, code := dumpCLI(t, path)
	want := lines("OWNER epoch=4294967297 file_id=0000000000000abc", "SET a 1 planned", "OWNER epoch=4294967298 file_id=0000000000000abc")
	expectDump(t, out, errOut, code, want)
	out, _, code = dumpCLI(t, "--format", "json", path)
	if code != 0 || !strings.Contains(out, `{"type":"owner","epoch":4294967298,"file_id":"0000000000000abc"}`) {
		t.Fatalf("json dump (%d):\n%s", code, out)
	}
	if _, errOut, code := dumpCLI(t, "--verify", path); code != 0 {
		t.Fatalf("verify: %d %s", code, errOut)
	}
}
