package master

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadAuthFile(t *testing.T) {
	cases := map[string]struct{ file, err string }{
		"ok":             {"[token.a]\nsecret = \"x\"\nnamespace = \"a.\"\n[token.b]\nsecret = \"y\"\nnamespace = \"*\"\n", ""},
		"missing secret": {"[token.a]\nnamespace = \"a.\"\n", "token.a: missing secret"},
		"empty ns":       {"[token.a]\nsecret = \"x\"\nnamespace = \"\"\n", "token.a: missing or empty namespace"},
		"duplicate":      {"[token.a]\nsecret = \"x\"\nnamespace = \"a\"\n[token.b]\nsecret = \"x\"\nnamespace = \"b\"\n", "same secret"},
		"bad toml":       {"[token.a\n", "auth file"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "auth.toml")
			os.WriteFile(path, []byte(tc.file), 0o600)
			ts, err := loadAuthFile(path)
			if tc.err == "" {
				if err != nil || len(ts.tokens) != 2 {
					t.Fatalf("got %v, %v", ts, err)
				}
				id, err := ts.authenticate("y")
				if err != nil || id.name != "b" || !id.allows("anything") {
					t.Fatalf("authenticate: %+v %v", id, err)
				}
				if _, err := ts.authenticate("z"); err == nil {
					t.Fatal("unknown secret accepted")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v, want an error with %q", err, tc.err)
			}
		})
	}
}

// TestLoadAuthFile_SharedFixture: the auth file the e2e tests use loads
// with its two tokens and their namespaces.
func TestLoadAuthFile_SharedFixture(t *testing.T) {
	ts, err := loadAuthFile("../testdata/auth/tokens.toml")
	if err != nil {
		t.Fatal(err)
	}
	dep, err := ts.authenticate("sk_deploy_a1b2c3")
	if err != nil || dep.name != "deploy" || !dep.allows("deploy.x") || dep.allows("backup.x") {
		t.Fatalf("deploy token: %+v %v", dep, err)
	}
	adm, err := ts.authenticate("sk_admin_d4e5f6")
	if err != nil || adm.name != "admin" || !adm.allows("anything") {
		t.Fatalf("admin token: %+v %v", adm, err)
	}
}

// TestAuthenticateComparesDigests: secrets are compared as fixed-length
// digests, so a wrong secret of any length (empty, a prefix, longer) is
// refused in the same comparison as one of the right length.
func TestAuthenticateComparesDigests(t *testing.T) {
	ts := &tokenStore{tokens: []token{{identity: identity{name: "a", namespace: "a."}, secret: secretDigest("s3cret")}}}
	if id, err := ts.authenticate("s3cret"); err != nil || id.name != "a" {
		t.Fatalf("authenticate(s3cret) = %v, %v", id, err)
	}
	for _, wrong := range []string{"", "s3cre", "s3cret ", "S3CRET", "s3cret\x00"} {
		if _, err := ts.authenticate(wrong); err == nil {
			t.Errorf("authenticate(%q) succeeded", wrong)
		}
	}
	for _, tok := range ts.tokens {
		if len(tok.secret) != sha256.Size {
			t.Errorf("token %s keeps a %d-byte secret, want its %d-byte digest", tok.name, len(tok.secret), sha256.Size)
		}
	}
}
