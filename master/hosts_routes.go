package master

import "github.com/tockd/tock/cluster"

// Routes to shards this host does not serve (docs/scale-out.md,
// "Forwarding"). The lease manager calls these per shard, in order.

// routeRemote: another host serves shard; its requests are forwarded to
// that host's master over the peer link (held until the link is up).
func (m *Master) routeRemote(shard int, r cluster.Route) {
	m.router.SetRemote(shard, m.Peer(r.Host, r.Addr))
}

// routeUnowned: no host is known to serve shard; its requests are held.
func (m *Master) routeUnowned(shard int) {
	m.router.SetUnowned(shard)
}
