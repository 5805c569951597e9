// Package cluster makes several Roost nodes one broker: an authenticated
// inter-node transport (raft and Roost's own streams share one port),
// membership on top of raft voters, writes forwarded to the leader, route
// exchange and message forwarding, and cluster-wide session takeover.
package cluster

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Stream kinds: the byte a dialer sends to say what the connection is for.
const (
	StreamRaft    byte = 'R' // hashicorp/raft's NetworkTransport
	StreamRPC     byte = 'C' // request/response control calls
	StreamForward byte = 'F' // route updates and forwarded messages
)

const (
	// handshakeMagic names the protocol version: ROOST/2 added the cluster
	// ids to the handshake. A ROOST/1 peer is refused with a message that
	// says so.
	handshakeMagic   = "ROOST/2\n"
	nonceLen         = 32
	handshakeTimeout = 5 * time.Second
	maxIdentLen      = 1024 // a cluster id or an address; both are far shorter
)

// ErrBadCookie means the peer does not hold the cluster secret.
var ErrBadCookie = errors.New("cluster: peer failed authentication (node.cookie differs)")

// ClusterMismatchError means the peer authenticated (it holds the cookie)
// but belongs to another cluster, so raft and forwarding traffic with it
// is refused. Control calls (Info, Join) still work across clusters:
// joining needs them.
type ClusterMismatchError struct {
	Peer         string // the peer's cluster address
	PeerCluster  string
	LocalCluster string
	Kind         byte
}

func (e *ClusterMismatchError) Error() string {
	return fmt.Sprintf("cluster: refusing %s traffic with %s: it is in cluster %s, this node is in cluster %s "+
		"(a node restored with `roost restore --force-new-cluster` while its old cluster still runs, "+
		"or a node of another cluster with the same node.cookie?)",
		kindName(e.Kind), e.Peer, quoteID(e.PeerCluster), quoteID(e.LocalCluster))
}

func quoteID(id string) string {
	if id == "" {
		return `""`
	}
	return id
}

func kindName(kind byte) string {
	switch kind {
	case StreamRaft:
		return "raft"
	case StreamRPC:
		return "control"
	case StreamForward:
		return "forwarding"
	}
	return fmt.Sprintf("stream %q", kind)
}

// sameClusterOnly reports whether streams of kind may only join members
// of one cluster. Control calls may cross clusters: a standalone node
// asks a member for its info and to be added, and a cluster's status asks
// a member that turned out to be in another cluster who it is.
func sameClusterOnly(kind byte) bool { return kind == StreamRaft || kind == StreamForward }

// The handshake is a mutual challenge-response with HMAC-SHA256 keyed by
// node.cookie: each side proves it holds the cookie without sending it,
// over fresh nonces so a recorded handshake cannot be replayed. Each side
// also states its cluster id (node.json), and the dialer its cluster
// address, inside the MACs, so neither can be altered without the cookie.
//
//	dialer → acceptor: magic, kind, dialer nonce, dialer cluster id, dialer address
//	acceptor → dialer: acceptor nonce, acceptor cluster id, MAC("accept", ...)
//	dialer → acceptor: MAC("dial", ...)
//
// where each MAC covers kind, both nonces, both cluster ids and the
// dialer's address. After the handshake both sides refuse raft and
// forwarding streams when the cluster ids differ.
//
// Without cluster TLS the stream after the handshake is not encrypted;
// use cluster.tls on networks you do not trust.
type handshakeIDs struct {
	dialCluster, dialAddr, acceptCluster string
}

func mac(cookie []byte, role string, kind byte, nd, na []byte, ids handshakeIDs) []byte {
	m := hmac.New(sha256.New, cookie)
	io.WriteString(m, role)
	m.Write([]byte{kind})
	m.Write(nd)
	m.Write(na)
	for _, s := range []string{ids.dialCluster, ids.dialAddr, ids.acceptCluster} {
		m.Write(lenPrefixed(s))
	}
	return m.Sum(nil)
}

func lenPrefixed(s string) []byte {
	b := make([]byte, 2, 2+len(s))
	binary.BigEndian.PutUint16(b, uint16(len(s)))
	return append(b, s...)
}

func readLenPrefixed(r io.Reader, what string) (string, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	n := int(binary.BigEndian.Uint16(l[:]))
	if n > maxIdentLen {
		return "", fmt.Errorf("%s of %d bytes is too long", what, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	return string(b), nil
}

func checkIdent(what, s string) error {
	if len(s) > maxIdentLen {
		return fmt.Errorf("cluster: %s of %d bytes is too long", what, len(s))
	}
	return nil
}

// clientHandshake authenticates an outgoing connection for kind and
// returns the acceptor's cluster id.
func clientHandshake(c net.Conn, cookie []byte, kind byte, clusterID, advertise string) (string, error) {
	if err := checkIdent("cluster id", clusterID); err != nil {
		return "", err
	}
	if err := checkIdent("cluster address", advertise); err != nil {
		return "", err
	}
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	defer c.SetDeadline(time.Time{})
	nd := make([]byte, nonceLen)
	rand.Read(nd)
	msg := append([]byte(handshakeMagic), kind)
	msg = append(msg, nd...)
	msg = append(msg, lenPrefixed(clusterID)...)
	msg = append(msg, lenPrefixed(advertise)...)
	if _, err := c.Write(msg); err != nil {
		return "", fmt.Errorf("cluster handshake with %s: %w", c.RemoteAddr(), err)
	}
	// An acceptor that rejects us just closes: most likely a bad cookie
	// on one side, or not a Roost cluster port (or an older Roost).
	const hint = "(is it a roost cluster port of the same roost version, with the same node.cookie?)"
	na := make([]byte, nonceLen)
	if _, err := io.ReadFull(c, na); err != nil {
		return "", fmt.Errorf("cluster handshake with %s: %w %s", c.RemoteAddr(), err, hint)
	}
	peerCluster, err := readLenPrefixed(c, "cluster id")
	if err != nil {
		return "", fmt.Errorf("cluster handshake with %s: %w %s", c.RemoteAddr(), err, hint)
	}
	ids := handshakeIDs{dialCluster: clusterID, dialAddr: advertise, acceptCluster: peerCluster}
	proof := make([]byte, sha256.Size)
	if _, err := io.ReadFull(c, proof); err != nil {
		return "", fmt.Errorf("cluster handshake with %s: %w %s", c.RemoteAddr(), err, hint)
	}
	if !hmac.Equal(proof, mac(cookie, "accept", kind, nd, na, ids)) {
		return "", fmt.Errorf("%w: %s", ErrBadCookie, c.RemoteAddr())
	}
	if _, err := c.Write(mac(cookie, "dial", kind, nd, na, ids)); err != nil {
		return "", fmt.Errorf("cluster handshake with %s: %w", c.RemoteAddr(), err)
	}
	return peerCluster, nil
}

// peerHello is what an authenticated dialer said about itself.
type peerHello struct {
	kind    byte
	cluster string // its cluster id
	addr    string // its cluster address (cluster.advertise)
}

// serverHandshake authenticates an incoming connection; clusterID is this
// node's cluster id.
func serverHandshake(c net.Conn, cookie []byte, clusterID string) (peerHello, error) {
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	defer c.SetDeadline(time.Time{})
	hello := make([]byte, len(handshakeMagic)+1+nonceLen)
	if _, err := io.ReadFull(c, hello); err != nil {
		return peerHello{}, fmt.Errorf("read hello: %w", err)
	}
	if magic := string(hello[:len(handshakeMagic)]); magic != handshakeMagic {
		if strings.HasPrefix(magic, "ROOST/") {
			return peerHello{}, fmt.Errorf("peer speaks cluster protocol %s, this node %s: every node of a cluster must run the same roost version",
				strings.TrimSpace(magic), strings.TrimSpace(handshakeMagic))
		}
		return peerHello{}, errors.New("not a roost cluster connection (bad magic)")
	}
	p := peerHello{kind: hello[len(handshakeMagic)]}
	switch p.kind {
	case StreamRaft, StreamRPC, StreamForward:
	default:
		return peerHello{}, fmt.Errorf("unknown stream kind %q", p.kind)
	}
	nd := hello[len(handshakeMagic)+1:]
	var err error
	if p.cluster, err = readLenPrefixed(c, "cluster id"); err != nil {
		return peerHello{}, err
	}
	if p.addr, err = readLenPrefixed(c, "cluster address"); err != nil {
		return peerHello{}, err
	}
	if err := checkIdent("cluster id", clusterID); err != nil {
		return peerHello{}, err
	}
	ids := handshakeIDs{dialCluster: p.cluster, dialAddr: p.addr, acceptCluster: clusterID}
	na := make([]byte, nonceLen)
	rand.Read(na)
	resp := append(na, lenPrefixed(clusterID)...)
	resp = append(resp, mac(cookie, "accept", p.kind, nd, na, ids)...)
	if _, err := c.Write(resp); err != nil {
		return peerHello{}, err
	}
	proof := make([]byte, sha256.Size)
	if _, err := io.ReadFull(c, proof); err != nil {
		return peerHello{}, fmt.Errorf("read proof: %w", err)
	}
	if !hmac.Equal(proof, mac(cookie, "dial", p.kind, nd, na, ids)) {
		return peerHello{}, ErrBadCookie
	}
	return p, nil
}
