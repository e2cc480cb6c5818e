package protocol

import (
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// TestTokenize covers the tokenizer rules and every example of ztick.md §1.3.
func TestTokenize(t *testing.T) {
	tests := []struct {
		name string
		line string
		want []string
		err  string
	}{
		{"ztick example spaces and backslash", `    Id   VERSION toto   32t\ata titi 111   `, []string{"Id", "VERSION", "toto", `32t\ata`, "titi", "111"}, ""},
		{"ztick example quoted tokens", `"123" "UNSET"`, []string{"123", "UNSET"}, ""},
		{"ztick example quoted datetime", `A SET app.x "2020-05-26 22:26:18"`, []string{"A", "SET", "app.x", "2020-05-26 22:26:18"}, ""},
		{"ztick example escaped quotes", `r1 RULE SET r p. shell "echo \"hi\""`, []string{"r1", "RULE", "SET", "r", "p.", "shell", `echo "hi"`}, ""},
		{"ztick example blank line", ``, nil, ""},
		{"ztick example single token", `r1`, []string{"r1"}, ""},
		{"whitespace only", `    `, nil, ""},
		{"tab is ordinary", "a\tb c", []string{"a\tb", "c"}, ""},
		{"quote ends bare token", `ab"cd"`, []string{"ab", "cd"}, ""},
		{"token right after closing quote", `"ab"cd`, []string{"ab", "cd"}, ""},
		{"two quoted back to back", `"a""b"`, []string{"a", "b"}, ""},
		{"empty quoted token", `a "" b`, []string{"a", "", "b"}, ""},
		{"only empty quoted", `""`, []string{""}, ""},
		{"escaped quote alone", `"\""`, []string{`"`}, ""},
		{"escaped backslash", `"a\\b"`, []string{`a\b`}, ""},
		{"backslash n is letter n", `"a\nb"`, []string{"anb"}, ""},
		{"backslash x is x", `"\x"`, []string{"x"}, ""},
		{"spaces kept inside quotes", `"  a  b "`, []string{"  a  b "}, ""},
		{"backslash outside quotes ordinary", `a\"b"`, []string{`a\`, "b"}, ""},
		{"trailing backslash outside quotes", `a\`, []string{`a\`}, ""},
		{"CR is ordinary inside a line", "a\rb", []string{"a\rb"}, ""},
		{"LF ends the line", "a b\nc d", []string{"a", "b"}, ""},
		{"LF inside quote ends the line", "\"a\nb\"", nil, "unterminated quote"},
		{"unterminated quote", `a "bc`, []string{"a"}, "unterminated quote"},
		{"lone quote", `"`, nil, "unterminated quote"},
		{"trailing backslash in quote", `"ab\`, nil, "unterminated quote"},
		{"ztick incomplete escape", `" \"\\`, nil, "unterminated quote"},
		{"escaped closing quote unterminated", `"ab\"`, nil, "unterminated quote"},
		{"utf8 kept", "é \"ü x\"", []string{"é", "ü x"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Tokenize([]byte(tt.line), nil)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("Tokenize(%q) error = %v, want %q", tt.line, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Tokenize(%q) error = %v", tt.line, err)
			}
			if len(got) == 0 && len(tt.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Tokenize(%q) = %q, want %q", tt.line, got, tt.want)
			}
		})
	}
}

func TestTokenizeReusesDst(t *testing.T) {
	dst := make([]string, 0, 8)
	dst, _ = Tokenize([]byte("a b c"), dst)
	got, _ := Tokenize([]byte("x"), dst)
	if len(got) != 1 || got[0] != "x" || &got[:1][0] != &dst[:1][0] {
		t.Fatalf("Tokenize did not reuse dst: %q", got)
	}
}

func TestAppendTokenRoundTrip(t *testing.T) {
	for _, s := range []string{"", "a", "a b", `"`, `\`, `a"b`, `a\b`, "\r", "x\r", "\t", "é", `\"`, " "} {
		line := AppendToken([]byte("x "), s)
		got, err := Tokenize(line, nil)
		if err != nil || len(got) != 2 || got[1] != s {
			t.Errorf("AppendToken(%q) = %q, tokenizes to %q, %v", s, line, got, err)
		}
	}
	if got := string(AppendToken(nil, "a\nb")); got != `"a b"` {
		t.Errorf("appendToken with LF = %q, want %q", got, `"a b"`)
	}
}

// TestTokenizeManyEscapedTokens: each escaped token costs its own size, not
// the rest of the line (a long line of them stays linear).
func TestTokenizeManyEscapedTokens(t *testing.T) {
	line := []byte(strings.Repeat(`"a\"b" `, 100000))
	toks, err := Tokenize(line, nil)
	if err != nil || len(toks) != 100000 || toks[0] != `a"b` {
		t.Fatalf("got %d tokens, %v", len(toks), err)
	}
	var ms1, ms2 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	if _, err := Tokenize(line, nil); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&ms2)
	if grown := ms2.TotalAlloc - ms1.TotalAlloc; grown > 64<<20 {
		t.Fatalf("tokenizing a %d-byte line allocated %d bytes", len(line), grown)
	}
}
