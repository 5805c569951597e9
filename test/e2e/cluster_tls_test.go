package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCerts makes a CA and, for each name, a certificate it signs (valid
// for 127.0.0.1 and as client and server), as PEM files in dir.
func writeCerts(t *testing.T, dir string, names ...string) (caFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "roost-test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	caFile = filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600)
	for i, name := range names {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalECPrivateKey(key)
		os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
		os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	}
	return caFile
}

func TestClusterMutualTLS(t *testing.T) {
	t.Parallel()
	dir := shortTempDir(t)
	caFile := writeCerts(t, dir, "a", "b")
	// A third CA signs the intruder's certificate: same cookie, wrong CA.
	otherDir := shortTempDir(t)
	writeCerts(t, otherDir, "x")
	tlsEnv := func(d, name, ca string) []string {
		return []string{"ROOST_CLUSTER__TLS__ENABLE=true",
			"ROOST_CLUSTER__TLS__CERTFILE=" + filepath.Join(d, name+".pem"),
			"ROOST_CLUSTER__TLS__KEYFILE=" + filepath.Join(d, name+".key"),
			"ROOST_CLUSTER__TLS__CACERTFILE=" + ca}
	}
	a := newClusterNode(t, "ta", tlsEnv(dir, "a", caFile)...)
	b := newClusterNode(t, "tb", tlsEnv(dir, "b", caFile)...)
	a.Start()
	b.Start()
	b.mustCtl("cluster", "join", a.Cluster)
	waitClusterHealthy(t, []*node{a, b}, 2)
	b.mustCtl("users", "add", "over-tls", "pw")
	waitConverged(t, []*node{a, b})

	x := newClusterNode(t, "tx", tlsEnv(otherDir, "x", filepath.Join(otherDir, "ca.pem"))...)
	x.Start()
	if _, errOut, err := x.ctl("cluster", "join", a.Cluster); err == nil {
		t.Fatal("a node with a certificate from another CA joined")
	} else if !strings.Contains(strings.ToLower(errOut), "certificate") && !strings.Contains(errOut, "tls") {
		t.Logf("join refused: %s", errOut)
	}
	if st := clusterStatus(a); len(st) != 2 {
		t.Fatalf("intruder became a member: %+v", st)
	}
}
