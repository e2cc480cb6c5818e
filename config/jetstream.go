package config

import (
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// PersistenceJetStream keeps each shard's log in a NATS JetStream stream,
// so that several tock hosts share the shards (see the [jetstream] section).
const PersistenceJetStream = "jetstream"

// JetStream defaults.
const (
	DefaultJetStreamCluster  = "tock"
	DefaultJetStreamReplicas = 3
	DefaultLeaseTTL          = 3 * time.Second
	MinLeaseTTL              = time.Second
	MaxJetStreamReplicas     = 5
)

// JetStream is the [jetstream] section, read when database.persistence =
// "jetstream": the NATS servers that hold the shard streams and the lease
// and rule buckets, and how this host is known to the other hosts.
type JetStream struct {
	// URLs are the NATS servers to connect to (nats:// or tls://).
	URLs []string `toml:"urls"`
	// ClusterName prefixes every stream and bucket, so several tock
	// clusters can share one NATS system.
	ClusterName string `toml:"cluster_name"`
	// Replicas of every stream and bucket (3 survives the loss of a NATS
	// server; 1 is for trying it out).
	Replicas int `toml:"replicas"`
	// HostName names this tock host, unique in the cluster (default: the
	// machine's host name).
	HostName string `toml:"host_name"`
	// Advertise is the host:port other tock hosts forward requests to.
	Advertise string `toml:"advertise"`
	// Listen is the address the forwarding listener binds (default:
	// Advertise).
	Listen string `toml:"listen"`
	// LeaseTTL: a host that has not renewed a shard's lease for this long
	// loses it to another host.
	LeaseTTL Duration `toml:"lease_ttl"`
	// TLSCA, TLSCert and TLSKey secure the connections to NATS and between
	// tock hosts (both sides present a certificate signed by TLSCA).
	TLSCA   string `toml:"tls_ca"`
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// Creds is a NATS credentials file; User/Password or Token are the
	// other ways to authenticate to NATS.
	Creds    string `toml:"creds"`
	User     string `toml:"user"`
	Password string `toml:"password"`
	Token    string `toml:"token"`
}

// clusterNameRE: stream and bucket names allow letters, digits, '-' and '_'.
var clusterNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

func (c *Config) checkJetStream(ps *problems) {
	j := c.JetStream
	if c.Database.Persistence != PersistenceJetStream {
		return
	}
	if len(j.URLs) == 0 {
		ps.add("jetstream.urls", `must list at least one NATS server when database.persistence = "jetstream"`)
	}
	for _, u := range j.URLs {
		p, err := url.Parse(u)
		if err != nil || p.Host == "" || (p.Scheme != "nats" && p.Scheme != "tls") {
			ps.add("jetstream.urls", fmt.Sprintf("%q must be nats://host:port or tls://host:port", u))
		}
	}
	if !clusterNameRE.MatchString(j.ClusterName) {
		ps.add("jetstream.cluster_name", fmt.Sprintf("%q must be 1 to 32 letters, digits, '-' or '_'", j.ClusterName))
	}
	ps.between("jetstream.replicas", j.Replicas, 1, MaxJetStreamReplicas)
	if strings.TrimSpace(j.HostName) == "" {
		ps.add("jetstream.host_name", "must not be empty")
	} else if strings.ContainsAny(j.HostName, " \t\r\n*>.") {
		ps.add("jetstream.host_name", fmt.Sprintf("%q must not contain spaces, '.', '*' or '>'", j.HostName))
	}
	if j.Advertise == "" {
		ps.add("jetstream.advertise", `must be set when database.persistence = "jetstream" (the host:port other hosts forward to)`)
	} else {
		ps.addr("jetstream.advertise", j.Advertise)
	}
	if j.Listen != "" {
		ps.addr("jetstream.listen", j.Listen)
	}
	if j.LeaseTTL.Duration < MinLeaseTTL {
		ps.add("jetstream.lease_ttl", fmt.Sprintf("%s must be at least %s", j.LeaseTTL.Duration, MinLeaseTTL))
	}
	switch {
	case j.TLSCert != "" && j.TLSKey == "":
		ps.add("jetstream.tls_cert", "requires jetstream.tls_key")
	case j.TLSCert == "" && j.TLSKey != "":
		ps.add("jetstream.tls_key", "requires jetstream.tls_cert")
	}
	if j.Token != "" && j.User != "" {
		ps.add("jetstream.token", "cannot be combined with jetstream.user")
	}
	if j.Password != "" && j.User == "" {
		ps.add("jetstream.password", "requires jetstream.user")
	}
}

// JetStreamListen is the forwarding listener's address: jetstream.listen,
// or jetstream.advertise when that is empty.
func (c Config) JetStreamListen() string {
	if c.JetStream.Listen != "" {
		return c.JetStream.Listen
	}
	return c.JetStream.Advertise
}

// defaultHostName is the machine's host name with the characters a
// host_name may not hold replaced, or "tock" if it has none.
func defaultHostName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "tock"
	}
	return strings.NewReplacer(".", "-", " ", "-", "*", "-", ">", "-").Replace(h)
}
