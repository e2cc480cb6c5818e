package suite

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/tockd/tock/bench"
)

// ServeEcho is the body of the echo server process the suite starts (see
// Options.EchoArgv): it serves bench.EchoServer on addr until SIGTERM or
// SIGINT. The echo server runs as a process of its own, not inside the
// suite, so that its CPU is measured like every other server's and not
// mixed with the load generator's.
func ServeEcho(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("echo server: %w", err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sig)
	done := make(chan struct{})
	go func() {
		defer close(done)
		bench.EchoServer(ln)
	}()
	select {
	case <-sig:
		ln.Close()
		<-done
	case <-done:
	}
	return nil
}
