package main

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// operationsDoc is the page that documents signals and ctl commands.
const operationsDoc = "../../docs/operations.md"

// TestOperationsDoc: every ctl command and every signal `tock serve` acts
// on is in docs/operations.md.
func TestOperationsDoc(t *testing.T) {
	b, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, sub := range ctlCommand().Subcommands {
		if !strings.Contains(doc, "`tock ctl "+sub.Name) {
			t.Errorf("%s does not document `tock ctl %s`: add it to the tock ctl table", operationsDoc, sub.Name)
		}
	}
	for _, sig := range servedSignals {
		name := unix.SignalName(sig.(syscall.Signal))
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("%s does not document %s: add it to the signal table", operationsDoc, name)
		}
	}
}
