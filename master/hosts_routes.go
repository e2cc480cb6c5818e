package master

import "github.com/tockd/tock/cluster"

// Routes to shards this host does not serve (docs/scale-out.md,
// "Forwarding"). The lease manager calls these per shard, in order.

// routeRemote: another host serves shard. Until requests are forwarded to
// it, they are held (and fail as "shard unavailable" past the bounds).
func (m *Master) routeRemote(shard int, r cluster.Route) {
	m.router.SetOwner([]int{shard}, nil)
}

// routeUnowned: no host is known to serve shard; its requests are held.
func (m *Master) routeUnowned(shard int) {
	m.router.SetOwner([]int{shard}, nil)
}
