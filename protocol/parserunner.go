package protocol

import (
	"errors"

	"github.com/tockd/tock/store"
)

// ParseRunner checks a runner exactly as RULE SET does: kind is the runner
// name ("shell", "http", ...) and args are the tokens that follow it on a
// RULE SET line (awf inputs as `--input k=v` pairs). Other front ends (the
// REST API) build args and call it, so every way in accepts the same rules.
func ParseRunner(kind string, args []string) (store.Runner, error) {
	r, reason := parseRunner(kind, args)
	if reason != "" {
		return store.Runner{}, errors.New(reason)
	}
	return r, nil
}
