// Package docs holds tock's user documentation; its tests keep the
// reference pages true to the code.
package docs

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tockd/tock/config"
	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/master"
)

// tableKeys returns the first backquoted cell of every row of the page's
// tables whose first column is headed header.
func tableKeys(t *testing.T, page, header string) []string {
	t.Helper()
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| `([^`]+)` \\|")
	var keys []string
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case !strings.HasPrefix(line, "|"):
			in = false
		case strings.HasPrefix(line, "| "+header+" |"):
			in = true
		case in:
			if m := row.FindStringSubmatch(line); m != nil {
				keys = append(keys, m[1])
			}
		}
	}
	return keys
}

// compareSets reports what want has that got lacks and the reverse, one
// error each, so that a merge knows exactly what to add or remove.
func compareSets(t *testing.T, page, what string, got, want []string) {
	t.Helper()
	for _, k := range want {
		if !slices.Contains(got, k) {
			t.Errorf("%s does not document the %s %s: add a row \"| `%s` | ... |\"", page, what, k, k)
		}
	}
	for _, k := range got {
		if !slices.Contains(want, k) {
			t.Errorf("%s documents %s, which is not a %s: remove its row", page, k, what)
		}
	}
	seen := map[string]bool{}
	for _, k := range got {
		if seen[k] {
			t.Errorf("%s documents %s twice", page, k)
		}
		seen[k] = true
	}
}

// TestConfigurationDoc: every config key has its row in
// configuration.md, and no other key does.
func TestConfigurationDoc(t *testing.T) {
	compareSets(t, "configuration.md", "config key", tableKeys(t, "configuration.md", "key"), config.Keys())
}

// jsonPaths lists the JSON field paths of type t: "a.b" for nested
// objects, "a[]" for arrays of objects; times, maps and scalars are
// leaves.
func jsonPaths(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct {
		return jsonPaths(t.Elem(), prefix+"[]")
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeFor[time.Time]() {
		return []string{prefix}
	}
	var out []string
	if prefix != "" {
		out = append(out, prefix)
		prefix += "."
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		// A heartbeat's metrics feed /metrics (docs/monitoring.md); the
		// master takes them out before the status reaches the stats tree.
		if t == reflect.TypeFor[ipc.Status]() && name == "metrics" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, jsonPaths(f.Type, prefix+name)...)
	}
	return out
}

// TestStatsDoc: every field of the stats tree (master.Stats, with each
// worker's ipc.Status) has its row in stats.md, and no other does.
func TestStatsDoc(t *testing.T) {
	compareSets(t, "stats.md", "stats field", tableKeys(t, "stats.md", "field"), jsonPaths(reflect.TypeFor[master.Stats](), ""))
}
