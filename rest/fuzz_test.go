package rest

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/tockd/tock/httpapi"
)

// A bad body gets an error with a status, never a panic; a good one gives
// a rule the line protocol would store.
func FuzzRuleBody(f *testing.F) {
	f.Add([]byte(`{"pattern":"a.","runner":{"type":"shell","command":"echo hi"}}`), "a.r")
	f.Add([]byte(`{"pattern":"a.","runner":{"type":"awf","workflow":"w","inputs":["k=v"]}}`), "x")
	f.Fuzz(func(t *testing.T, body []byte, id string) {
		rule, err := ParseRuleBody(body, id)
		if err != nil {
			if httpapi.StatusOf(err) == 500 || err.Error() == "" {
				t.Fatalf("error without a client status: %v", err)
			}
			return
		}
		if rule.ID != id || rule.Runner.Validate() != nil {
			t.Fatalf("accepted an unstorable rule %+v", rule)
		}
		// What the API shows parses back to the same rule (no password in
		// the seeds' URLs, so nothing is redacted away).
		view := viewRunner(rule.Runner)
		if strings.Contains(strings.Join(rule.Runner.Args, " "), "@") {
			return
		}
		b, err := json.Marshal(RuleBody{Pattern: &rule.Pattern, Runner: &view})
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseRuleBody(b, id)
		if err != nil || again.Runner.Kind != rule.Runner.Kind || strings.Join(again.Runner.Args, "\x00") != strings.Join(rule.Runner.Args, "\x00") {
			t.Fatalf("shown rule %s does not parse back: %+v vs %+v (%v)", b, again, rule, err)
		}
	})
}

func FuzzJobBody(f *testing.F) {
	f.Add([]byte(`{"execution":"2026-03-30T16:00:00+02:00"}`))
	f.Add([]byte(`{"execution":1711612800000000000}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		_, ns, err := ParseJobBody(body)
		if err != nil {
			if httpapi.StatusOf(err) != 400 && httpapi.StatusOf(err) != 409 {
				t.Fatalf("status %d for %v", httpapi.StatusOf(err), err)
			}
			return
		}
		// The time the API shows reads back as the same ns.
		again, err := ParseExecution(json.RawMessage(`"` + formatNs(ns) + `"`))
		if err != nil || again != ns {
			t.Fatalf("%d shown as %s reads back as %d (%v)", ns, formatNs(ns), again, err)
		}
	})
}

// The path and query decoders answer 400 or succeed; a decoded id is one
// the line protocol can carry and round-trips through its encoding; a
// cursor decodes back to the id it was made from.
func FuzzPathAndQuery(f *testing.F) {
	f.Add("a%20b%2Fc", "prefix=a.&status=failed,planned&limit=10&cursor=amE")
	f.Add("%zz", "limit=0")
	f.Fuzz(func(t *testing.T, seg, rawQuery string) {
		if id, err := DecodeID(seg); err == nil {
			if id == "" || len(id) > maxIDLen || strings.Contains(id, "\n") {
				t.Fatalf("accepted id %q", id)
			}
			if back, err := DecodeID(url.PathEscape(id)); err != nil || back != id {
				t.Fatalf("id %q does not round-trip: %q %v", id, back, err)
			}
			if c, err := DecodeCursor(EncodeCursor(id)); err != nil || c != id {
				t.Fatalf("cursor of %q: %q %v", id, c, err)
			}
		} else if httpapi.StatusOf(err) != 400 {
			t.Fatalf("status %d: %v", httpapi.StatusOf(err), err)
		}
		q, err := ParseListQuery(rawQuery)
		if err != nil {
			if httpapi.StatusOf(err) != 400 {
				t.Fatalf("status %d: %v", httpapi.StatusOf(err), err)
			}
			return
		}
		if q.Limit < 1 || q.Limit > MaxLimit {
			t.Fatalf("limit %d accepted", q.Limit)
		}
	})
}
