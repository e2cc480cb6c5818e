package master

// startControl starts the control server (control.sock, and control.url
// when configured). Replaced by the control-socket implementation.
func (m *Master) startControl() error { return nil }

// stopControl stops the control server.
func (m *Master) stopControl() {}
