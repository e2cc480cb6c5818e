package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// examplePath is the repository's tock.toml.example.
const examplePath = "../tock.toml.example"

// TestExampleIsTheDefaults: tock.toml.example loads, equals the built-in
// defaults, and opens no listener beyond the default ones.
func TestExampleIsTheDefaults(t *testing.T) {
	cfg, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("%s is not the defaults:\n got %+v\nwant %+v", examplePath, cfg, Default())
	}
	if cfg.Control.URL != "" {
		t.Fatalf("%s opens a TCP control listener", examplePath)
	}
}

// TestExampleNamesEveryKey: every key of Config appears in the example, set
// or commented out, so it can stand as the list of keys.
func TestExampleNamesEveryKey(t *testing.T) {
	b, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	section := ""
	present := map[string]bool{}
	sectionRE := regexp.MustCompile(`^#?\s*\[(\w+)\]`)
	keyRE := regexp.MustCompile(`^#?\s*(\w+)\s*=`)
	for _, line := range strings.Split(string(b), "\n") {
		if m := sectionRE.FindStringSubmatch(line); m != nil {
			section = m[1]
		} else if m := keyRE.FindStringSubmatch(line); m != nil && section != "" {
			present[section+"."+m[1]] = true
		}
	}
	for _, key := range Keys() {
		if !present[key] {
			t.Errorf("%s does not name the key %s (set it to its default, or comment it out when it has none)", examplePath, key)
		}
	}
}
