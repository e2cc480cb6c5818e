package e2e

import "github.com/tockd/tock/master"

// tock's monitoring types, compared field by field with nats-server's.
type (
	tockVarz     = master.Varz
	tockConnInfo = master.ConnInfo
)
