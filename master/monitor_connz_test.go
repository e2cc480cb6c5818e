package master

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestConnzQueryAsNats: /connz takes the query values nats-server takes
// (state in any case, subs=detail), so a dashboard or script written for
// nats-server's /connz is not answered 400 by tock.
func TestConnzQueryAsNats(t *testing.T) {
	m := loadedMaster(t)
	for _, tc := range []struct {
		q     string
		total int
		subs  bool
	}{
		{"state=CLOSED", closedRingSize, false},
		{"state=Any", closedRingSize, false},
		{"state=ALL&sort=cid", closedRingSize, false},
		{"state=closed&subs=detail", closedRingSize, true},
		{"state=closed&subs=DETAIL&limit=1", closedRingSize, true},
	} {
		rec := httptest.NewRecorder()
		m.HTTPMux().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/connz?"+tc.q, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("GET /connz?%s: %d %s", tc.q, rec.Code, rec.Body)
			continue
		}
		var cz struct {
			Total int `json:"total"`
			Conns []struct {
				Subs *[]string `json:"subscriptions_list"`
			} `json:"connections"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &cz); err != nil {
			t.Fatalf("GET /connz?%s: %v", tc.q, err)
		}
		if cz.Total != tc.total {
			t.Errorf("GET /connz?%s: total %d, want %d", tc.q, cz.Total, tc.total)
		}
		if len(cz.Conns) == 0 || (cz.Conns[0].Subs != nil) != tc.subs {
			t.Errorf("GET /connz?%s: subscriptions_list present = %v, want %v", tc.q, len(cz.Conns) > 0 && cz.Conns[0].Subs != nil, tc.subs)
		}
	}
	for _, q := range []string{"state=gone", "subs=maybe", "sort=CID"} {
		rec := httptest.NewRecorder()
		m.HTTPMux().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/connz?"+q, nil))
		if rec.Code != http.StatusBadRequest {
			t.Errorf("GET /connz?%s: %d, want 400", q, rec.Code)
		}
	}
}
