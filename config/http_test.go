package config

import (
	"strings"
	"testing"
)

// TestHTTPKeys: [http] pprof and monitoring_auth, controller.write_deadline.
func TestHTTPKeys(t *testing.T) {
	c := mustLoad(t, "[http]\nlisten = \"0.0.0.0:8080\"\npprof = true\nmonitoring_auth = \"open\"\n[controller]\nwrite_deadline = \"2s\"\n")
	if !c.HTTP.Pprof || c.HTTP.MonitoringAuth != MonitoringAuthOpen || c.Controller.WriteDeadline.Seconds() != 2 || c.MonitoringNeedsToken() {
		t.Fatalf("http keys: %+v write_deadline %s", c.HTTP, c.Controller.WriteDeadline)
	}
	d := Default()
	if d.HTTP.Pprof || d.HTTP.MonitoringAuth != MonitoringAuthAuto || d.Controller.WriteDeadline.Duration != DefaultWriteDeadline {
		t.Fatalf("defaults: %+v %s", d.HTTP, d.Controller.WriteDeadline)
	}
	for _, tc := range []struct{ text, want string }{
		{"[http]\nmonitoring_auth = \"maybe\"", `http.monitoring_auth: "maybe" is not one of auto, open, token`},
		{"[http]\nmonitoring_auth = \"token\"", `http.monitoring_auth: "token" requires controller.auth_file`},
		{"[http]\npprof = \"yes\"", "http.pprof: incompatible types"},
		{"[controller]\nwrite_deadline = \"0s\"", "controller.write_deadline: must be a positive duration"},
	} {
		_, err := load(t, tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.text, err, tc.want)
		}
	}
	// auto: a token only off loopback and with an auth file.
	for _, tc := range []struct {
		listen, authFile string
		want             bool
	}{
		{"127.0.0.1:5680", "a.toml", false}, {"localhost:5680", "a.toml", false}, {"[::1]:5680", "a.toml", false},
		{"0.0.0.0:5680", "a.toml", true}, {"10.0.0.1:5680", "", false},
	} {
		c := Default()
		c.HTTP.Listen = &tc.listen
		c.Controller.AuthFile = tc.authFile
		if got := c.MonitoringNeedsToken(); got != tc.want {
			t.Errorf("auto on %s with auth file %q: needs token %v", tc.listen, tc.authFile, got)
		}
	}
}
