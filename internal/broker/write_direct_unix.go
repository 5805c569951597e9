//go:build unix

package broker

import (
	"net"
	"syscall"
)

// directWriter writes to a TCP socket what it takes at once, without
// waiting: while a client's write queue is empty, a write costs what it
// did before the queue (write_queue.go), one system call.
type directWriter struct{ raw syscall.RawConn }

// newDirectWriter returns nil for connections other than plain TCP (TLS,
// WebSocket): their writes always go through the queue.
func newDirectWriter(conn net.Conn) *directWriter {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return &directWriter{raw: raw}
}

// write writes what the socket takes of p now and returns how much; an
// error only if the socket failed.
func (d *directWriter) write(p []byte) (int, error) {
	var n int
	var werr error
	err := d.raw.Write(func(fd uintptr) bool {
		for n < len(p) {
			k, e := syscall.Write(int(fd), p[n:])
			if k > 0 {
				n += k
			}
			switch {
			case e == syscall.EINTR:
				continue
			case e == syscall.EAGAIN: // full: the rest is queued
				return true
			case e != nil:
				werr = e
				return true
			case k <= 0:
				return true
			}
		}
		return true // never wait for the socket
	})
	if werr == nil {
		werr = err
	}
	return n, werr
}
