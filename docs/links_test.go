package docs

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// pages are the Markdown files a user reads: the README and every page
// here, relative to this directory.
func pages(t *testing.T) []string {
	t.Helper()
	docs, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"../README.md"}, docs...)
}

// prose returns a page's lines outside fenced code blocks, with inline code
// spans blanked out, so that examples are not taken for links.
func prose(t *testing.T, page string) []string {
	t.Helper()
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	code := regexp.MustCompile("`[^`]*`")
	var out []string
	fenced := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			out = append(out, "")
			continue
		}
		if fenced || strings.HasPrefix(line, "    ") {
			out = append(out, "")
			continue
		}
		out = append(out, code.ReplaceAllString(line, "``"))
	}
	return out
}

// anchors returns the anchors GitHub makes for a page's headings: lower
// case, punctuation dropped, spaces turned into hyphens, a repeated
// heading suffixed -1, -2, ...
func anchors(t *testing.T, page string) []string {
	t.Helper()
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var slug strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case unicode.IsLetter(r) || unicode.IsNumber(r) || r == '-' || r == '_':
				slug.WriteRune(r)
			case r == ' ':
				slug.WriteRune('-')
			}
		}
		a := slug.String()
		if n := seen[a]; n > 0 {
			seen[a]++
			a = fmt.Sprintf("%s-%d", a, n)
		} else {
			seen[a] = 1
		}
		out = append(out, a)
	}
	return out
}

// TestRelativeLinks: every relative link in the README and in docs/ points
// at a file of the repository, and its #anchor, if any, at a heading of
// that page.
func TestRelativeLinks(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	for _, page := range pages(t) {
		for n, line := range prose(t, page) {
			for _, m := range link.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				where := fmt.Sprintf("%s:%d: link %s", page, n+1, target)
				path, anchor, _ := strings.Cut(target, "#")
				file := page
				if path != "" {
					file = filepath.Join(filepath.Dir(page), path)
					if _, err := os.Stat(file); err != nil {
						t.Errorf("%s: no such file %s", where, file)
						continue
					}
				}
				if anchor == "" {
					continue
				}
				if !strings.HasSuffix(file, ".md") {
					t.Errorf("%s: an anchor into a file that is not Markdown", where)
				} else if !slices.Contains(anchors(t, file), anchor) {
					t.Errorf("%s: %s has no heading with the anchor #%s (it has %v)", where, file, anchor, anchors(t, file))
				}
			}
		}
	}
}

// TestMentionedPages: a page named in prose without a link
// ("docs/files.md", "see operations.md") exists too.
func TestMentionedPages(t *testing.T) {
	mention := regexp.MustCompile(`(?:^|[\s(])((?:docs/)?[a-z0-9-]+\.md)\b`)
	for _, page := range pages(t) {
		for n, line := range prose(t, page) {
			for _, m := range mention.FindAllStringSubmatch(line, -1) {
				name := m[1]
				file := filepath.Join(filepath.Dir(page), name)
				if strings.HasPrefix(name, "docs/") {
					file = filepath.Join("..", name)
				}
				if _, err := os.Stat(file); err != nil {
					t.Errorf("%s:%d: names %s, which does not exist", page, n+1, name)
				}
			}
		}
	}
}

// TestReadmeLinksEveryPage: the README's documentation table links every
// page of docs/, so a new page cannot be left out of it.
func TestReadmeLinksEveryPage(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "## Documentation\n")
	if !ok {
		t.Fatal("README.md has no ## Documentation section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	docs, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if !strings.Contains(table, "](docs/"+d+")") {
			t.Errorf("README.md's documentation table does not link docs/%s: add a row \"| [docs/%s](docs/%s) | ... |\"", d, d, d)
		}
	}
}
