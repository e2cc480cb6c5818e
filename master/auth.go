package master

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// authTimeout is how long a connection has to send AUTH when auth is on.
const authTimeout = 5e9

// identity is what an authenticated connection may touch.
type identity struct {
	name      string
	namespace string // "*" = everything, else a byte prefix of ids
}

// allows reports whether id is inside the identity's namespace.
func (i identity) allows(id string) bool {
	return i.namespace == "*" || strings.HasPrefix(id, i.namespace)
}

// token is one entry of the auth file.
type token struct {
	identity
	secret []byte // secretDigest of the secret
}

// tokenStore is the parsed auth file (ztick's format: one [token.NAME]
// table per token with secret and namespace).
type tokenStore struct {
	tokens []token
}

// loadAuthFile reads and checks an auth file: every token needs a secret
// and a namespace, and no two tokens share a secret.
func loadAuthFile(path string) (*tokenStore, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth file: %w", err)
	}
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("auth file %s: larger than 1 MiB", path)
	}
	var doc struct {
		Token map[string]struct {
			Secret    *string `toml:"secret"`
			Namespace *string `toml:"namespace"`
		} `toml:"token"`
	}
	if _, err := toml.Decode(string(b), &doc); err != nil {
		return nil, fmt.Errorf("auth file %s: %w", path, err)
	}
	names := make([]string, 0, len(doc.Token))
	for name := range doc.Token {
		names = append(names, name)
	}
	sort.Strings(names)
	var problems []string
	ts := &tokenStore{}
	seen := map[string]string{}
	for _, name := range names {
		t := doc.Token[name]
		switch {
		case name == "":
			problems = append(problems, "a token without a name")
		case t.Secret == nil:
			problems = append(problems, fmt.Sprintf("token.%s: missing secret", name))
		case t.Namespace == nil || *t.Namespace == "":
			problems = append(problems, fmt.Sprintf("token.%s: missing or empty namespace", name))
		case seen[*t.Secret] != "":
			problems = append(problems, fmt.Sprintf("token.%s: same secret as token.%s", name, seen[*t.Secret]))
		default:
			seen[*t.Secret] = name
			ts.tokens = append(ts.tokens, token{identity: identity{name: name, namespace: *t.Namespace}, secret: secretDigest(*t.Secret)})
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("auth file %s: %s", path, strings.Join(problems, "; "))
	}
	return ts, nil
}

// errBadSecret answers an AUTH with an unknown secret.
var errBadSecret = errors.New("invalid secret")

// authenticate finds the token of secret. Every token is compared, each in
// constant time, so the time taken says nothing about which one matched.
func (ts *tokenStore) authenticate(secret string) (identity, error) {
	d := secretDigest(secret)
	var found identity
	ok := 0
	for _, t := range ts.tokens {
		if subtle.ConstantTimeCompare(t.secret, d) == 1 {
			found, ok = t.identity, 1
		}
	}
	if ok == 0 {
		return identity{}, errBadSecret
	}
	return found, nil
}

// secretDigest is what secrets are compared by: ConstantTimeCompare
// returns at once on a length difference, so comparing the secrets
// themselves would tell a client how long they are; every digest has the
// same length.
func secretDigest(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
}
