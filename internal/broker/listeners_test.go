package broker

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

	"github.com/eclipse/paho.golang/packets"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
)

type testPKI struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
	clientCert                tls.Certificate
}

// newPKI writes a CA, a server certificate for 127.0.0.1 and returns a
// client certificate, all generated on the spot.
func newPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "roost test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(cn string, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: ips,
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srvDER, srvKey := issue("127.0.0.1", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	srvKeyDER, _ := x509.MarshalECPrivateKey(srvKey)
	cliDER, cliKey := issue("client-1", x509.ExtKeyUsageClientAuth, nil)
	pki := &testPKI{caFile: write("ca.pem", "CERTIFICATE", caDER), certFile: write("server.pem", "CERTIFICATE", srvDER),
		keyFile: write("server.key", "EC PRIVATE KEY", srvKeyDER), pool: x509.NewCertPool(),
		clientCert: tls.Certificate{Certificate: [][]byte{cliDER}, PrivateKey: cliKey}}
	pki.pool.AddCert(ca)
	return pki
}

func TestWebSocketListener(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) {
		o.AuthnEnable = false
		o.Listeners = append(o.Listeners, ListenerOptions{Name: "ws", Type: ListenerWS, Bind: "127.0.0.1:0"})
	})
	wsURL := "ws://" + n.addr("ws") + "/mqtt"
	c, _, err := dialV3(t, wsURL, "ws-client", "", "", true, nil)
	if err != nil {
		t.Fatalf("connect over websocket: %v", err)
	}
	if code := c.sub("ws/#", 1); code != 1 {
		t.Fatalf("subscribe over websocket: %d", code)
	}
	tcp := mustV5(t, n.tcp(), "tcp-client", "", "")
	big := make([]byte, 200<<10) // spans many websocket frames / reads
	tcp.mustPub("ws/big", string(big), 1, false)
	tcp.mustPub("ws/small", "hi", 1, false)
	got := map[string]int{} // the client handles messages concurrently: any order
	for range 2 {
		m := c.next()
		got[m.Topic()] = len(m.Payload())
	}
	if got["ws/big"] != len(big) || got["ws/small"] != 2 {
		t.Fatalf("got %v", got)
	}
	if err := c.pub("ws/back", "from ws", 1, false); err != nil {
		t.Fatal(err)
	}
	if m := c.next(); string(m.Payload()) != "from ws" {
		t.Fatalf("got %q", m.Payload())
	}
}

func TestTLSListener(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	n := startNode(t, t.TempDir(), func(o *Options) {
		o.AuthnEnable = false
		o.Listeners = append(o.Listeners,
			ListenerOptions{Name: "ssl", Type: ListenerSSL, Bind: "127.0.0.1:0", CertFile: pki.certFile, KeyFile: pki.keyFile},
			ListenerOptions{Name: "mtls", Type: ListenerSSL, Bind: "127.0.0.1:0", CertFile: pki.certFile,
				KeyFile: pki.keyFile, CACertFile: pki.caFile},
			ListenerOptions{Name: "wss", Type: ListenerWSS, Bind: "127.0.0.1:0", CertFile: pki.certFile, KeyFile: pki.keyFile})
	})

	// MQTT 5 over TLS.
	c, _, err := dialV5(t, "", "tls5", v5Opts{clean: true, dial: func() (net.Conn, error) {
		conn, err := tls.Dial("tcp", n.addr("ssl"), &tls.Config{RootCAs: pki.pool})
		if err != nil {
			return nil, err
		}
		// paho.golang writes a packet in several Write calls from more
		// than one goroutine (its pinger starts at once); over TLS those
		// interleave unless the conn serialises them.
		return packets.NewThreadSafeConn(conn), nil
	}})
	if err != nil {
		t.Fatalf("MQTT 5 over TLS: %v", err)
	}
	c.mustSub("t/#", 1)
	c.mustPub("t/1", "secure", 1, false)
	if m := c.until("t/1"); string(m.Payload) != "secure" {
		t.Fatalf("got %q", m.Payload)
	}

	// MQTT 3.1.1 over TLS and over secure WebSocket.
	v3, _, err := dialV3(t, "ssl://"+n.addr("ssl"), "tls3", "", "", true, func(o *pahov3.ClientOptions) {
		o.SetTLSConfig(&tls.Config{RootCAs: pki.pool})
	})
	if err != nil {
		t.Fatalf("3.1.1 over TLS: %v", err)
	}
	v3.c.Disconnect(0)
	wss, _, err := dialV3(t, "wss://"+n.addr("wss")+"/mqtt", "wss3", "", "", true, func(o *pahov3.ClientOptions) {
		o.SetTLSConfig(&tls.Config{RootCAs: pki.pool})
	})
	if err != nil {
		t.Fatalf("3.1.1 over secure websocket: %v", err)
	}
	wss.c.Disconnect(0)

	// With a CA file, a client certificate is required.
	m, _, err := dialV3(t, "ssl://"+n.addr("mtls"), "mtls-ok", "", "", true, func(o *pahov3.ClientOptions) {
		o.SetTLSConfig(&tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.clientCert}})
	})
	if err != nil {
		t.Fatalf("mutual TLS with a client certificate: %v", err)
	}
	m.c.Disconnect(0)
	if _, _, err := dialV3(t, "ssl://"+n.addr("mtls"), "mtls-none", "", "", true, func(o *pahov3.ClientOptions) {
		o.SetTLSConfig(&tls.Config{RootCAs: pki.pool})
	}); err == nil {
		t.Fatal("mutual TLS listener accepted a client without a certificate")
	}
}

func TestTLSListenerBadFiles(t *testing.T) {
	t.Parallel()
	_, err := newListener(ListenerOptions{Name: "ssl", Type: ListenerSSL, Bind: "127.0.0.1:0",
		CertFile: "/nonexistent.pem", KeyFile: "/nonexistent.key"}, time.Second, newWriteQueues(DefaultMaxQueuedBytes))
	if err == nil {
		t.Fatal("want an error for missing certificate files")
	}
}

// A connection that never sends CONNECT is closed after ConnectTimeout.
func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.ConnectTimeout = 200 * time.Millisecond })
	conn, err := net.Dial("tcp", n.tcp())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("read data from a silent connection")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the broker did not close a connection that never sent CONNECT")
	}
}
