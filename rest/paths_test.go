package rest

import (
	"testing"

	"github.com/tockd/tock/httpapi"
)

// TestParseListQueryEmptyValues: GET /jobs?prefix=&status=&limit=&cursor=,
// as docs/rest.md writes it, is the first page with the defaults; a bad
// value is still a 400 and a repeated one too.
func TestParseListQueryEmptyValues(t *testing.T) {
	q, err := ParseListQuery("prefix=&status=&limit=&cursor=")
	if err != nil {
		t.Fatalf("empty values: %v", err)
	}
	if q != (ListQuery{Limit: DefaultLimit}) {
		t.Fatalf("empty values = %+v, want the defaults", q)
	}
	for _, raw := range []string{"limit=0", "limit=x", "status=done", "cursor=zz", "limit=&limit=", "when="} {
		if _, err := ParseListQuery(raw); httpapi.StatusOf(err) != 400 {
			t.Errorf("%q: %v, want a 400", raw, err)
		}
	}
}
