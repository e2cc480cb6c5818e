package config

import "net"

// Values of http.monitoring_auth.
const (
	// MonitoringAuthAuto: open on a loopback listener or without an auth
	// file; otherwise a token of the auth file is required.
	MonitoringAuthAuto = "auto"
	// MonitoringAuthOpen: never ask for a token (as nats-server does).
	MonitoringAuthOpen = "open"
	// MonitoringAuthToken: always ask for a token of the auth file.
	MonitoringAuthToken = "token"
)

var monitoringAuths = []string{MonitoringAuthAuto, MonitoringAuthOpen, MonitoringAuthToken}

func (c *Config) checkHTTP(ps *problems) {
	if l := c.HTTP.Listen; l != nil && *l != "" {
		ps.addr("http.listen", *l)
	}
	ps.oneOf("http.monitoring_auth", c.HTTP.MonitoringAuth, monitoringAuths)
	if c.HTTP.MonitoringAuth == MonitoringAuthToken && c.Controller.AuthFile == "" {
		ps.add("http.monitoring_auth", `"token" requires controller.auth_file (the tokens)`)
	}
}

// MonitoringNeedsToken reports whether the monitoring endpoints ask for a
// token of the auth file (see http.monitoring_auth).
func (c Config) MonitoringNeedsToken() bool {
	switch c.HTTP.MonitoringAuth {
	case MonitoringAuthOpen:
		return false
	case MonitoringAuthToken:
		return true
	}
	if c.Controller.AuthFile == "" {
		return false
	}
	return !isLoopback(c.HTTPListen())
}

// isLoopback reports whether a listen address binds only loopback
// interfaces ("localhost", 127.0.0.0/8, ::1).
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
