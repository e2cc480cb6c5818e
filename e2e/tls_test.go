package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T, dir string) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tock-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

// TestTLS: with tls_cert and tls_key the protocol runs over TLS 1.2+; a
// plaintext client is dropped without affecting the next one.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath, pool := writeCert(t, dir)
	cfg := strings.Replace(clusterConfig(dir, ""), "[controller]\n",
		fmt.Sprintf("[controller]\ntls_cert = %q\ntls_key = %q\n", certPath, keyPath), 1)
	c := startCluster(t, dir, cfg)
	// Plaintext garbage: the handshake fails and the connection closes.
	raw, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	raw.Write([]byte("r1 STAT\n"))
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := bufio.NewReader(raw).ReadString('\n'); err == nil {
		t.Fatal("plaintext client got a reply from a TLS listener")
	}
	raw.Close()
	conn, err := tls.Dial("tcp", c.addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer conn.Close()
	cl := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	cl.expect("r1 SET tls.job 4102444800000000000", "r1 OK")
	cl.expect("r2 GET tls.job", "r2 OK planned 4102444800000000000")
	body, _ := cl.list("s", "s STAT")
	if statMap(body)["tls_enabled"] != "1" {
		t.Fatalf("STAT tls_enabled: %q", body)
	}
}
