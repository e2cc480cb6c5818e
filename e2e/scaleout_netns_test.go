package e2e

// The network-namespace variant (TOCK_NETNS=1, as root): each host k is a
// namespace tocknsK with its own address 10.77.0.K on a bridge, running
// nats-server nK and tock host hK; the test stays in the root namespace
// and reaches them through the bridge. A partition is the host's veth
// link set down.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tockd/tock/internal/natstest"
)

const (
	soBridge    = "tockbr0"
	soPartition = 15 * time.Second
)

func soNS(i int) string   { return fmt.Sprintf("tockns%d", i+1) }
func soVeth(i int) string { return fmt.Sprintf("tockv%d", i+1) }
func soIP(i int) string   { return fmt.Sprintf("10.77.0.%d", i+1) }

// ipCmd runs ip with args and fails the test on an error.
func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// netnsTeardown removes what netnsSetup made (or a crashed run left).
func netnsTeardown() {
	for i := range soHosts {
		exec.Command("ip", "netns", "del", soNS(i)).Run()
		// The host side of the pair, in case the namespace outlives its
		// name for a moment (the kernel tears it down asynchronously).
		exec.Command("ip", "link", "del", soVeth(i)).Run()
	}
	exec.Command("ip", "link", "del", soBridge).Run()
}

// netnsSetup makes the bridge and one namespace per host.
func netnsSetup(t testing.TB) {
	t.Helper()
	netnsTeardown()
	t.Cleanup(netnsTeardown)
	ipCmd(t, "link", "add", soBridge, "type", "bridge")
	ipCmd(t, "addr", "add", "10.77.0.254/24", "dev", soBridge)
	ipCmd(t, "link", "set", soBridge, "up")
	for i := range soHosts {
		ipCmd(t, "netns", "add", soNS(i))
		ipCmd(t, "link", "add", soVeth(i), "type", "veth", "peer", "name", "eth0", "netns", soNS(i))
		ipCmd(t, "link", "set", soVeth(i), "master", soBridge)
		ipCmd(t, "link", "set", soVeth(i), "up")
		ipCmd(t, "-n", soNS(i), "addr", "add", soIP(i)+"/24", "dev", "eth0")
		ipCmd(t, "-n", soNS(i), "link", "set", "eth0", "up")
		ipCmd(t, "-n", soNS(i), "link", "set", "lo", "up")
	}
}

// netnsCert writes one self-signed certificate (its own CA) for the
// hosts' addresses, used by every nats-server, tock host and the test:
// peer links off loopback require TLS.
func netnsCert(t testing.TB, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.77.0.254")}
	for i := range soHosts {
		ips = append(ips, net.ParseIP(soIP(i)))
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tock-netns-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: ips, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// startNetnsNATS runs nats-server nK in namespace K, clients on TLS
// (verified both ways); it returns the URLs.
func startNetnsNATS(t testing.TB, dir, cert, key string) []string {
	t.Helper()
	bin := natstest.Binary(t)
	var urls, routes []string
	for i := range soHosts {
		urls = append(urls, fmt.Sprintf("tls://%s:4222", soIP(i)))
		routes = append(routes, fmt.Sprintf("nats://%s:6222", soIP(i)))
	}
	for i := range soHosts {
		d := filepath.Join(dir, fmt.Sprintf("n%d", i+1))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "server_name: \"n%d\"\nlisten: \"%s:4222\"\njetstream {\n  store_dir: %q\n}\n", i+1, soIP(i), filepath.Join(d, "js"))
		fmt.Fprintf(&b, "tls {\n  cert_file: %q\n  key_file: %q\n  ca_file: %q\n  verify: true\n}\n", cert, key, cert)
		fmt.Fprintf(&b, "cluster {\n  name: \"netns\"\n  listen: \"%s:6222\"\n  routes: [%s]\n}\n", soIP(i), `"`+strings.Join(routes, `", "`)+`"`)
		conf := filepath.Join(d, "nats-server.conf")
		if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		logf, err := os.Create(filepath.Join(d, "nats-server.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("ip", "netns", "exec", soNS(i), bin, "-c", conf)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		logf.Close()
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	return urls
}

// dialInNetns connects to addr from inside namespace ns (a partitioned
// host is reachable only from there): the socket is made on a thread
// moved into the namespace, and keeps it.
func dialInNetns(ns, addr string) (*rawClient, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: the thread, left in the other namespace, ends
		// with this goroutine.
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		ch <- result{c, err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, r.err
	}
	return &rawClient{conn: r.c, r: newLineReader(r.c)}, nil
}

// soInside is a client inside the partitioned host's namespace: it SETs
// new keys on the host's shards and GETs one it set before, every 50 ms,
// and records every OK.
type soInside struct {
	mu     sync.Mutex
	setOKs []time.Time // reply times of acknowledged SETs
	getOKs []time.Time // reply times of answered GETs
	acked  map[string]int64
}

func (in *soInside) run(ns, addr string, shards []int, known string, stop <-chan struct{}, done *sync.WaitGroup) {
	defer done.Done()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var rc *rawClient
	defer func() {
		if rc != nil {
			rc.close()
		}
	}()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if rc == nil {
			var err error
			if rc, err = dialInNetns(ns, addr); err != nil {
				continue
			}
		}
		key := keyOnShard(fmt.Sprintf("inside.%d.", i), shards[i%len(shards)], 0)
		exec := soFar + int64(i)
		got := rc.doWithin(fmt.Sprintf("i%d SET %s %d", i, key, exec), time.Second)
		now := time.Now()
		switch {
		case got == fmt.Sprintf("i%d OK", i):
			in.mu.Lock()
			in.setOKs = append(in.setOKs, now)
			in.acked[key] = exec
			in.mu.Unlock()
		case strings.HasPrefix(got, "io error"):
			rc.close()
			rc = nil
			continue
		}
		got = rc.doWithin(fmt.Sprintf("j%d GET %s", i, known), time.Second)
		switch {
		case strings.HasPrefix(got, fmt.Sprintf("j%d OK ", i)):
			in.mu.Lock()
			in.getOKs = append(in.getOKs, time.Now())
			in.mu.Unlock()
		case strings.HasPrefix(got, "io error"):
			rc.close()
			rc = nil
		}
	}
}

// after counts the times in ts after at.
func after(ts []time.Time, at time.Time) (n int) {
	for _, t := range ts {
		if t.After(at) {
			n++
		}
	}
	return n
}

// TestScaleOut_NetnsPartition: three namespaces on a bridge, each a
// nats-server and a tock host; h2's link goes down for 15 s under load.
// The others serve its shards after its lease expires; h2 itself, asked
// from inside its namespace, acknowledges no write and serves no read of
// its shards after its lease deadline; after the heal it rejoins, and
// nothing acknowledged is lost.
func TestScaleOut_NetnsPartition(t *testing.T) {
	if os.Getenv("TOCK_NETNS") != "1" {
		t.Skip("set TOCK_NETNS=1 (as root) to run the network-namespace variant")
	}
	if os.Geteuid() != 0 {
		t.Fatal("TOCK_NETNS=1 needs root (ip netns)")
	}
	netnsSetup(t)
	c := &soClusterT{t: t, dir: t.TempDir()}
	cert, key := netnsCert(t, c.dir)
	c.tlsCA, c.tlsCert, c.tlsKey = cert, cert, key
	urls := startNetnsNATS(t, c.dir, cert, key)
	extra := fmt.Sprintf("tls_ca = %q\ntls_cert = %q\ntls_key = %q\n", cert, cert, key)
	c.boot(urls, extra, func(i int) (string, string) { return soNS(i), soIP(i) })
	victim := c.hosts[1]
	before, err := c.leases()
	if err != nil {
		t.Fatal(err)
	}
	shards := shardsOf(before, victim.name)
	cl := dial(t, victim.client)
	known := keyOnShard("inside.known.", shards[0], 0)
	cl.expect("k SET "+known+" "+fmt.Sprint(soFar), "k OK")

	ld := newSoLoad(c.addrsExcept(victim))
	ld.pipeline(1, 16, 500)
	ld.probe()
	in := &soInside{acked: map[string]int64{}}
	stopInside := make(chan struct{})
	var insideDone sync.WaitGroup
	insideDone.Add(1)
	go in.run(soNS(1), victim.client, shards, known, stopInside, &insideDone)
	stopped := false
	defer func() {
		if !stopped {
			close(stopInside)
			insideDone.Wait()
			ld.stop()
		}
	}()
	c.waitAcks(ld, 500, "load warm-up")
	waitForWhy(t, 30*time.Second, "the inside client served", func() (bool, string) {
		in.mu.Lock()
		defer in.mu.Unlock()
		return len(in.setOKs) > 0 && len(in.getOKs) > 0, fmt.Sprintf("%d SETs, %d GETs answered", len(in.setOKs), len(in.getOKs))
	})

	ipCmd(t, "link", "set", soVeth(1), "down")
	at := time.Now()
	t.Logf("partitioned %s (shards %v) at %s", victim.name, shards, at.UTC().Format("15:04:05.000"))
	waitForWhy(t, 90*time.Second, victim.name+"'s shards served by the others", func() (bool, string) {
		for _, s := range shards {
			if _, ok := ld.probers[s].servedAfter(at); !ok {
				return false, fmt.Sprintf("shard %d", s)
			}
		}
		return true, ""
	})
	var ds []time.Duration
	for _, s := range shards {
		d, _ := ld.probers[s].servedAfter(at)
		ds = append(ds, d)
	}
	p50, mx := durations(ds)
	t.Logf("takeover of the partitioned host's shards: p50 %s, max %s", p50.Round(time.Millisecond), mx.Round(time.Millisecond))
	// The partition lasts its full length: it is the fault's input, not a
	// wait for an event.
	waitFor(t, soPartition+time.Minute, "the partition's end", func() bool { return time.Since(at) >= soPartition })
	ipCmd(t, "link", "set", soVeth(1), "up")
	healed := time.Now()
	// Its lease deadline is at most the TTL after the partition began.
	deadline := at.Add(soLeaseTTL)
	in.mu.Lock()
	lateSets, lateGets := after(in.setOKs, deadline), after(in.getOKs, deadline)
	in.mu.Unlock()
	// Answers after the heal are a rejoined host's, not a stale owner's.
	in.mu.Lock()
	lateSets -= after(in.setOKs, healed)
	lateGets -= after(in.getOKs, healed)
	in.mu.Unlock()
	if lateSets > 0 || lateGets > 0 {
		t.Errorf("%s acknowledged %d SETs and answered %d GETs of its shards after its lease deadline, while partitioned", victim.name, lateSets, lateGets)
	}
	c.waitServing(120 * time.Second)
	c.waitAcks(ld, 500, "load after the heal")
	close(stopInside)
	insideDone.Wait()
	ld.stop()
	stopped = true
	inside := newSoLedger()
	in.mu.Lock()
	for k, v := range in.acked {
		inside.ack(k, v)
	}
	in.mu.Unlock()
	c.verifyNoLoss("after the partition", ld.l, inside)
}
