package master

import (
	"strings"
	"testing"

	"github.com/tockd/tock/protocol"
)

// TestOpSlotsCoverEveryOp: every instruction of the line protocol has its
// slot in the per-command reply counters, so tock_requests_total counts
// it (docs/monitoring.md); INFO once fell outside them.
func TestOpSlotsCoverEveryOp(t *testing.T) {
	for op := protocol.OpSet; int(op) < numOpSlots; op++ {
		if strings.HasPrefix(op.String(), "Op(") {
			t.Errorf("slot %d is not an instruction", op)
		}
	}
	if next := protocol.Op(numOpSlots); !strings.HasPrefix(next.String(), "Op(") {
		t.Errorf("%s has no slot: move numOpSlots to it", next)
	}
	var b writeBatch
	b.add(uint8(protocol.OpInfo), []byte("r1 OK planned 0 shard=1 rule=\n"))
	b.add(uint8(protocol.OpInfo), []byte("r2 ERROR not found\n"))
	if b.results[protocol.OpInfo] != [2]int64{1, 1} {
		t.Errorf("INFO results = %v, want one ok and one error", b.results[protocol.OpInfo])
	}
}
