package store

import (
	"go/parser"
	"go/token"
	"strconv"
	"testing"
)

// The stores and the codec are the pure core (style guide §1, §4): they
// must not reach for files, sockets, processes or the clock.
func TestPureCoreDoesNoIO(t *testing.T) {
	pure := []string{"types.go", "records.go", "fields.go", "runners.go", "jobs.go", "dueheap.go", "rules.go", "page.go"}
	banned := map[string]bool{"os": true, "os/exec": true, "net": true, "io/fs": true, "syscall": true, "time": true}
	fset := token.NewFileSet()
	for _, name := range pure {
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if banned[path] {
				t.Errorf("%s imports %s: the pure core does no I/O and reads no clock", name, path)
			}
		}
	}
}
