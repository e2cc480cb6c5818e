package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// uptimeRE is nats-server's uptime format: whole seconds with minutes,
// hours, days and years as needed.
var uptimeRE = regexp.MustCompile(`^(\d+y)?(\d+d)?(\d+h)?(\d+m)?\d+s$`)

// kindOf names a decoded JSON value's type.
func kindOf(v any) string {
	switch v.(type) {
	case float64:
		return "number"
	case string:
		return "string"
	case bool:
		return "bool"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// checkKinds checks that every key of want is in got with that JSON type,
// and that "time" strings are RFC 3339 and "duration" strings nats-style.
func checkKinds(t *testing.T, what string, got map[string]any, want map[string]string) {
	t.Helper()
	for k, kind := range want {
		v, ok := got[k]
		if !ok {
			t.Errorf("%s: field %q missing", what, k)
			continue
		}
		switch kind {
		case "time":
			s, ok := v.(string)
			if _, err := time.Parse(time.RFC3339Nano, s); !ok || err != nil {
				t.Errorf("%s: %q = %v, want an RFC 3339 string", what, k, v)
			}
		case "duration":
			s, ok := v.(string)
			if !ok || !uptimeRE.MatchString(s) {
				t.Errorf("%s: %q = %v, want a duration string like 1h2m3s", what, k, v)
			}
		default:
			if kindOf(v) != kind {
				t.Errorf("%s: %q = %v is a %s, want a %s", what, k, v, kindOf(v), kind)
			}
		}
	}
}

var varzKinds = map[string]string{
	"server_id": "string", "server_name": "string", "version": "string", "go": "string", "host": "string",
	"port": "number", "http_host": "string", "http_port": "number", "max_connections": "number",
	"max_control_line": "number", "auth_timeout": "number", "tls_timeout": "number", "write_deadline": "number",
	"start": "time", "now": "time", "uptime": "duration", "mem": "number", "cores": "number", "gomaxprocs": "number",
	"cpu": "number", "connections": "number", "total_connections": "number", "in_msgs": "number",
	"out_msgs": "number", "in_bytes": "number", "out_bytes": "number", "slow_consumers": "number",
	"http_req_stats": "object", "config_load_time": "time", "subscriptions": "number",
	"workers": "number", "phase": "number", "shards": "number", "jobs": "object", "rules": "number",
	"executions": "object", "persistence": "string", "fsync": "string",
}

var connKinds = map[string]string{
	"cid": "number", "kind": "string", "type": "string", "ip": "string", "port": "number", "start": "time",
	"last_activity": "time", "rtt": "string", "uptime": "duration", "idle": "duration", "pending_bytes": "number",
	"in_msgs": "number", "out_msgs": "number", "in_bytes": "number", "out_bytes": "number",
	"subscriptions": "number", "name": "string", "lang": "string", "version": "string",
	"tls_version": "string", "tls_cipher_suite": "string",
}

// TestMonitor_NatsTypes: /varz and /connz decode into nats-server's own
// server.Varz and server.Connz (what nats-top and prometheus-nats-exporter
// use) with every documented field carrying its value, and the JSON types
// match field by field. The server_id is stable across restarts.
func TestMonitor_NatsTypes(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, monitorConfig(dir, ""))
	hm := httpMonitor(t, c)
	cl := dial(t, c.addr)
	var sent, recv int
	for i := range 10 {
		line := fmt.Sprintf("r%d SET nats.job.%d 4102444800000000000", i, i)
		sent += len(line) + 1
		recv += len(cl.do(line)) + 1
	}
	cl.send("q QUERY nats.job.")
	replyLines := 10
	for {
		l := cl.line()
		recv += len(l) + 1
		replyLines++
		if l == "q OK" {
			break
		}
	}
	sent += len("q QUERY nats.job.") + 1
	localPort := cl.conn.LocalAddr().(*net.TCPAddr).Port

	// Heartbeats carry the jobs; counters are published per batch.
	var raw []byte
	var v server.Varz
	waitFor(t, 10*time.Second, "varz with the jobs and the traffic", func() bool {
		_, raw = hm.do("GET", "/varz", "")
		var tock struct {
			Jobs struct{ Total int } `json:"jobs"`
		}
		json.Unmarshal(raw, &tock)
		v = server.Varz{}
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("decode /varz into server.Varz: %v\n%s", err, raw)
		}
		return tock.Jobs.Total == 10 && v.InMsgs == 11 && v.OutMsgs == int64(replyLines)
	})
	var vm map[string]any
	json.Unmarshal(raw, &vm)
	checkKinds(t, "/varz", vm, varzKinds)

	idFile, err := os.ReadFile(filepath.Join(dir, "data", "server_id"))
	if err != nil {
		t.Fatal(err)
	}
	clientPort, _ := strconv.Atoi(strings.Split(c.addr, ":")[1])
	httpPort, _ := strconv.Atoi(strings.Split(c.httpAddr(), ":")[1])
	host, _ := os.Hostname()
	checks := []struct {
		field string
		ok    bool
	}{
		{"server_id", v.ID == strings.TrimSpace(string(idFile)) && strings.HasPrefix(v.ID, "N") && len(v.ID) == 56},
		{"server_name", v.Name == host},
		{"version", v.Version != ""},
		{"go", strings.HasPrefix(v.GoVersion, "go1.")},
		{"host", v.Host == "127.0.0.1"},
		{"port", v.Port == clientPort},
		{"http_host", v.HTTPHost == "127.0.0.1"},
		{"http_port", v.HTTPPort == httpPort},
		{"max_connections", v.MaxConn == 10000},
		{"max_control_line", v.MaxControlLine == 4096},
		{"auth_timeout", v.AuthTimeout == 5},
		{"tls_timeout", v.TLSTimeout == 5},
		{"write_deadline", v.WriteDeadline == 30*time.Second},
		{"start", time.Since(v.Start) < time.Minute && v.Start.Before(v.Now)},
		{"now", time.Since(v.Now) < time.Minute},
		{"uptime", uptimeRE.MatchString(v.Uptime)},
		{"mem", v.Mem > 1<<20},
		{"cores", v.Cores > 0},
		{"gomaxprocs", v.MaxProcs > 0},
		{"cpu", v.CPU >= 0},
		{"connections", v.Connections == 1},
		{"total_connections", v.TotalConnections == 1},
		{"in_msgs", v.InMsgs == 11},
		{"out_msgs", v.OutMsgs == int64(replyLines)},
		{"in_bytes", v.InBytes == int64(sent)},
		{"out_bytes", v.OutBytes == int64(recv)},
		{"slow_consumers", v.SlowConsumers == 0},
		{"http_req_stats", v.HTTPReqStats["/varz"] >= 1},
		{"config_load_time", !v.ConfigLoadTime.IsZero() && !v.ConfigLoadTime.After(v.Start.Add(time.Second))},
	}
	for _, ck := range checks {
		if !ck.ok {
			t.Errorf("/varz %s: wrong value in %+v", ck.field, v)
		}
	}
	var tock struct {
		Workers, Phase, Shards, Rules int
		Jobs                          map[string]int
		Executions                    struct {
			Pending, Inflight int
			Total             map[string]int
		}
		Persistence, Fsync string
	}
	json.Unmarshal(raw, &tock)
	if tock.Workers != 2 || tock.Phase != 0 || tock.Shards != 8 || tock.Rules != 0 || tock.Jobs["planned"] != 10 ||
		tock.Persistence != "logfile" || tock.Fsync != "always" || tock.Executions.Total == nil {
		t.Errorf("tock's /varz fields: %+v", tock)
	}

	var cz server.Connz
	var cm map[string]any
	waitFor(t, 10*time.Second, "connz with the traffic", func() bool {
		_, raw = hm.do("GET", "/connz", "")
		cz = server.Connz{}
		if err := json.Unmarshal(raw, &cz); err != nil {
			t.Fatalf("decode /connz into server.Connz: %v\n%s", err, raw)
		}
		return len(cz.Conns) == 1 && cz.Conns[0].OutMsgs == int64(replyLines)
	})
	json.Unmarshal(raw, &cm)
	checkKinds(t, "/connz", cm, map[string]string{"server_id": "string", "now": "time", "num_connections": "number",
		"total": "number", "offset": "number", "limit": "number", "connections": "array"})
	checkKinds(t, "/connz connection", cm["connections"].([]any)[0].(map[string]any), connKinds)
	ci := cz.Conns[0]
	if cz.ID != v.ID || cz.NumConns != 1 || cz.Total != 1 || cz.Offset != 0 || cz.Limit != 1024 ||
		ci.Kind != "Client" || ci.Type != "ztick" || ci.IP != "127.0.0.1" || ci.Port != localPort ||
		ci.RTT != "0s" || !uptimeRE.MatchString(ci.Uptime) || !uptimeRE.MatchString(ci.Idle) ||
		ci.Pending != 0 || ci.InMsgs != 11 || ci.OutMsgs != int64(replyLines) || ci.InBytes != int64(sent) ||
		ci.OutBytes != int64(recv) || ci.NumSubs != 0 || ci.Name != "" || ci.Stop != nil || ci.Reason != "" ||
		ci.LastActivity.Before(ci.Start) || time.Since(ci.Start) > time.Minute {
		t.Errorf("/connz: %+v\nconnection: %+v", cz, ci)
	}
	// nats-top asks for subscriptions with subs=1: an empty list.
	_, raw = hm.do("GET", "/connz?subs=1&limit=1024&sort=cid", "")
	cz = server.Connz{}
	json.Unmarshal(raw, &cz)
	if len(cz.Conns) != 1 || !strings.Contains(string(raw), `"subscriptions_list": []`) {
		t.Errorf("subs=1: %s", raw)
	}

	// The id is kept in the data dir.
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	c.start()
	var again server.Varz
	hm = httpMonitor(t, c)
	hm.expect("GET", "/varz", "", 200, &again)
	if again.ID != v.ID {
		t.Fatalf("server_id after a restart %q, want %q", again.ID, v.ID)
	}
}

// TestMonitor_NatsTypesMatchStruct: every field of tock's Varz and ConnInfo
// that nats-server also has decodes into the same Go kind there.
func TestMonitor_NatsTypesMatchStruct(t *testing.T) {
	jsonKinds := func(typ reflect.Type) map[string]reflect.Kind {
		out := map[string]reflect.Kind{}
		for i := range typ.NumField() {
			f := typ.Field(i)
			name := strings.Split(f.Tag.Get("json"), ",")[0]
			if name != "" && name != "-" {
				k := f.Type.Kind()
				if k == reflect.Pointer {
					k = f.Type.Elem().Kind()
				}
				out[name] = k
			}
		}
		return out
	}
	nats := jsonKinds(reflect.TypeOf(server.Varz{}))
	for name, k := range jsonKinds(reflect.TypeOf(tockVarz{})) {
		if nk, ok := nats[name]; ok && nk != k {
			t.Errorf("varz %q: tock %s, nats-server %s", name, k, nk)
		}
	}
	nats = jsonKinds(reflect.TypeOf(server.ConnInfo{}))
	for name, k := range jsonKinds(reflect.TypeOf(tockConnInfo{})) {
		if nk, ok := nats[name]; ok && nk != k {
			t.Errorf("connz connection %q: tock %s, nats-server %s", name, k, nk)
		}
	}
}
