package master

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tockd/tock/config"
	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/rest"
)

// testCA is a CA and a certificate it signed for 127.0.0.1, good for
// both ends of a link (server and client auth), as PEM files.
type testCA struct {
	ca, cert, key string
	pair          tls.Certificate
	pool          *x509.CertPool
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tock test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "tock host"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := testCA{ca: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem")}
	for path, b := range map[string]*pem.Block{c.ca: {Type: "CERTIFICATE", Bytes: caDER},
		c.cert: {Type: "CERTIFICATE", Bytes: der}, c.key: {Type: "EC PRIVATE KEY", Bytes: kb}} {
		if err := os.WriteFile(path, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if c.pair, err = tls.LoadX509KeyPair(c.cert, c.key); err != nil {
		t.Fatal(err)
	}
	c.pool = x509.NewCertPool()
	c.pool.AddCert(caCert)
	return c
}

func (c testCA) apply(cfg *config.Config) {
	cfg.JetStream.TLSCA, cfg.JetStream.TLSCert, cfg.JetStream.TLSKey = c.ca, c.cert, c.key
}

// TestPeer_TLS attacks "trusted only with TLS": with jetstream.tls_* both
// hosts forward over mutual TLS; a plaintext dialer, a TLS dialer without
// a client certificate, and a plaintext host dialing a TLS one are all
// refused before any request is read.
func TestPeer_TLS(t *testing.T) {
	ca := newTestCA(t)
	h1, h2 := startTestHost(t, "h1", ca.apply), startTestHost(t, "h2", ca.apply)
	h1.route(h2, 1)
	if got := h1.whoServes(1); got != "h2" {
		t.Fatalf("shard 1 over TLS served by %q, want h2", got)
	}
	addr := h2.m.PeerAddr().String()
	hello := ipc.PeerHello{Cluster: "tock", Host: "hx", Proto: ipc.ProtoVersion, PeerProto: ipc.PeerProto}

	// Plaintext: the TLS handshake fails and the link closes, unanswered.
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	l := ipc.NewLink(raw)
	defer l.Abort()
	if err := l.SendJSON(ipc.TypePeerHello, hello); err != nil {
		t.Fatal(err)
	}
	if f, err := l.Recv(); err == nil {
		t.Errorf("a plaintext dialer got a %s frame from a TLS peer listener", f.Type)
	}
	// TLS without a client certificate: refused by the handshake.
	tc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12})
	if err == nil {
		l := ipc.NewLink(tc)
		defer l.Abort()
		if err := l.SendJSON(ipc.TypePeerHello, hello); err == nil {
			if f, err := l.Recv(); err == nil {
				t.Errorf("a dialer without a client certificate got a %s frame", f.Type)
			}
		}
	}
	// With the certificate: accepted.
	tc, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{ca.pair}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("a dialer with the cluster's certificate: %v", err)
	}
	good := ipc.NewLink(tc)
	defer good.Abort()
	if err := good.SendJSON(ipc.TypePeerHello, hello); err != nil {
		t.Fatal(err)
	}
	if f, err := good.Recv(); err != nil || f.Type != ipc.TypePeerWelcome {
		t.Fatalf("welcome over TLS: %v %v", f.Type, err)
	}

	// A plaintext host cannot link to a TLS one: its requests wait, the
	// peer says why.
	h3 := startTestHost(t, "h3", nil)
	h3.route(h2, 2)
	p := h3.m.Peer("h2", "")
	waitUntil(t, "h3's link to h2 refused", func() bool {
		err := p.lastErrOr(nil)
		return p.State() == string(peerBackoff) && err != nil
	})
	if r := h3.do(ipc.Request{Op: ipc.OpGet, Shard: 2, Key: "k"}); r.Err != ErrShardUnavailable.Error() {
		t.Errorf("through a refused link: %+v", r)
	}
}

// TestPeer_RESTListingCoversEveryHost attacks the REST listing fan-out:
// GET /jobs through one host pages through every host's jobs in id order,
// each once.
func TestPeer_RESTListingCoversEveryHost(t *testing.T) {
	h1, h2 := startTestHost(t, "h1", nil), startTestHost(t, "h2", nil)
	h1.route(h2, 1, 3)
	var want []string
	for i := 0; i < 30; i++ {
		k := keyIn("list."+string(rune('a'+i%26))+".", i%testShards)
		want = append(want, k)
		if r := h1.do(ipc.Request{Op: ipc.OpSet, Shard: ShardOf(k, testShards), Key: k, Execution: 1}); r.Kind != ipc.KindOK {
			t.Fatalf("SET %s: %+v", k, r)
		}
	}
	b := h1.m.RESTBackend()
	var got []string
	after := ""
	for pages := 0; pages < 100; pages++ {
		jobs, more, err := b.ListJobs(t.Context(), rest.ListQuery{Prefix: "list.", After: after, Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			got = append(got, j.ID)
		}
		if !more {
			break
		}
		after = jobs[len(jobs)-1].ID
	}
	if len(got) != len(want) {
		t.Fatalf("listed %d jobs, want %d: %v", len(got), len(want), got)
	}
	for i := 1; i < len(got); i++ {
		if got[i-1] >= got[i] {
			t.Fatalf("not in id order at %d: %q, %q", i, got[i-1], got[i])
		}
	}
	served := map[string]bool{}
	for _, fw := range h2.fs.spawned {
		for _, r := range fw.requests() {
			if r.Op == ipc.OpSet {
				served[r.Key] = true
			}
		}
	}
	for _, k := range want {
		if s := ShardOf(k, testShards); (s == 1 || s == 3) != served[k] {
			t.Errorf("job %s of shard %d: on h2 %v", k, s, served[k])
		}
	}
}
