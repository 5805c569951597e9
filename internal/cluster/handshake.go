// Package cluster makes several Roost nodes one broker: an authenticated
// inter-node transport (raft and Roost's own streams share one port),
// membership on top of raft voters, writes forwarded to the leader, route
// exchange and message forwarding, and cluster-wide session takeover.
package cluster

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Stream kinds: the byte a dialer sends to say what the connection is for.
const (
	StreamRaft    byte = 'R' // hashicorp/raft's NetworkTransport
	StreamRPC     byte = 'C' // request/response control calls
	StreamForward byte = 'F' // route updates and forwarded messages
)

const (
	handshakeMagic   = "ROOST/1\n"
	nonceLen         = 32
	handshakeTimeout = 5 * time.Second
)

// ErrBadCookie means the peer does not hold the cluster secret.
var ErrBadCookie = errors.New("cluster: peer failed authentication (node.cookie differs)")

// The handshake is a mutual challenge-response with HMAC-SHA256 keyed by
// node.cookie: each side proves it holds the cookie without sending it,
// over fresh nonces so a recorded handshake cannot be replayed.
//
//	dialer → acceptor: magic, kind, dialer nonce
//	acceptor → dialer: acceptor nonce, MAC("accept", kind, nd, na)
//	dialer → acceptor: MAC("dial", kind, nd, na)
//
// Without cluster TLS the stream after the handshake is not encrypted;
// use cluster.tls on networks you do not trust.
func mac(cookie []byte, role string, kind byte, nd, na []byte) []byte {
	m := hmac.New(sha256.New, cookie)
	io.WriteString(m, role)
	m.Write([]byte{kind})
	m.Write(nd)
	m.Write(na)
	return m.Sum(nil)
}

// clientHandshake authenticates an outgoing connection for kind.
func clientHandshake(c net.Conn, cookie []byte, kind byte) error {
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	defer c.SetDeadline(time.Time{})
	nd := make([]byte, nonceLen)
	rand.Read(nd)
	msg := append([]byte(handshakeMagic), kind)
	if _, err := c.Write(append(msg, nd...)); err != nil {
		return fmt.Errorf("cluster handshake with %s: %w", c.RemoteAddr(), err)
	}
	resp := make([]byte, nonceLen+sha256.Size)
	if _, err := io.ReadFull(c, resp); err != nil {
		// An acceptor that rejects us just closes: most likely a bad cookie
		// on one side, or not a Roost cluster port.
		return fmt.Errorf("cluster handshake with %s: %w (is it a roost cluster port with the same node.cookie?)", c.RemoteAddr(), err)
	}
	na := resp[:nonceLen]
	if !hmac.Equal(resp[nonceLen:], mac(cookie, "accept", kind, nd, na)) {
		return fmt.Errorf("%w: %s", ErrBadCookie, c.RemoteAddr())
	}
	if _, err := c.Write(mac(cookie, "dial", kind, nd, na)); err != nil {
		return fmt.Errorf("cluster handshake with %s: %w", c.RemoteAddr(), err)
	}
	return nil
}

// serverHandshake authenticates an incoming connection and returns its kind.
func serverHandshake(c net.Conn, cookie []byte) (byte, error) {
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	defer c.SetDeadline(time.Time{})
	hello := make([]byte, len(handshakeMagic)+1+nonceLen)
	if _, err := io.ReadFull(c, hello); err != nil {
		return 0, fmt.Errorf("read hello: %w", err)
	}
	if string(hello[:len(handshakeMagic)]) != handshakeMagic {
		return 0, errors.New("not a roost cluster connection (bad magic)")
	}
	kind := hello[len(handshakeMagic)]
	switch kind {
	case StreamRaft, StreamRPC, StreamForward:
	default:
		return 0, fmt.Errorf("unknown stream kind %q", kind)
	}
	nd := hello[len(handshakeMagic)+1:]
	na := make([]byte, nonceLen)
	rand.Read(na)
	if _, err := c.Write(append(na, mac(cookie, "accept", kind, nd, na)...)); err != nil {
		return 0, err
	}
	proof := make([]byte, sha256.Size)
	if _, err := io.ReadFull(c, proof); err != nil {
		return 0, fmt.Errorf("read proof: %w", err)
	}
	if !hmac.Equal(proof, mac(cookie, "dial", kind, nd, na)) {
		return 0, ErrBadCookie
	}
	return kind, nil
}
