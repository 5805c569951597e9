// Command baremochi runs a plain mochi-mqtt v2 server — no Roost hooks — on
// one TCP listener, with the capabilities Roost configures by default, so a
// benchmark can tell Roost's own overhead from the engine's in the same run.
// It is a benchmarking aid, run by hand or by bench/compare.sh.
//
//	baremochi -addr 127.0.0.1:1884
//	baremochi -addr 127.0.0.1:1884 -username bench -password benchpw   # auth + ACL on
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
)

type config struct {
	addr             string
	username         string
	password         string
	aclFilter        string
	maxPendingWrites int
	receiveMaximum   int
	maxInflight      int
	maxPacketSize    int
	maxSessionExpiry time.Duration
	logLevel         string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("baremochi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:1884", "TCP listen address")
	fs.StringVar(&c.username, "username", "", "if set, only this user may connect (auth ledger hook instead of allow-all)")
	fs.StringVar(&c.password, "password", "", "password for -username")
	fs.StringVar(&c.aclFilter, "acl", "bench/#", "with -username: the filter the user may publish and subscribe to (ACL check on every publish)")
	// Defaults mirror what Roost gives mochi (internal/config [mqtt] and
	// internal/broker Options): a bare mochi with mochi's own defaults (8192
	// pending writes) would not be comparable.
	fs.IntVar(&c.maxPendingWrites, "max-pending-writes", 1024, "MaximumClientWritesPending: per-client outbound queue (Roost mqtt.max_pending_writes)")
	fs.IntVar(&c.receiveMaximum, "receive-maximum", 1024, "ReceiveMaximum: QoS>0 messages a client may have in flight towards the server (Roost mqtt.max_inflight)")
	fs.IntVar(&c.maxInflight, "max-inflight", 8192, "MaximumInflight: QoS>0 messages held per client before new ones are dropped (Roost internal/broker Options.MaxInflight)")
	fs.IntVar(&c.maxPacketSize, "max-packet-size", 1<<20, "MaximumPacketSize in bytes (Roost mqtt.max_packet_size)")
	fs.DurationVar(&c.maxSessionExpiry, "max-session-expiry", 2*time.Hour, "MaximumSessionExpiryInterval (Roost mqtt.max_session_expiry)")
	fs.StringVar(&c.logLevel, "log-level", "warn", "debug | info | warn | error (mochi logs every connect at info)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	switch {
	case c.maxPendingWrites < 1 || c.maxPendingWrites > 1<<20:
		return c, fmt.Errorf("-max-pending-writes %d: want 1..%d", c.maxPendingWrites, 1<<20)
	case c.receiveMaximum < 1 || c.receiveMaximum > 65535:
		return c, fmt.Errorf("-receive-maximum %d: want 1..65535", c.receiveMaximum)
	case c.maxInflight < 1 || c.maxInflight > 65535:
		return c, fmt.Errorf("-max-inflight %d: want 1..65535", c.maxInflight)
	case c.maxPacketSize < 0:
		return c, fmt.Errorf("-max-packet-size %d: want >= 0", c.maxPacketSize)
	case c.maxSessionExpiry < 0:
		return c, fmt.Errorf("-max-session-expiry %s: want >= 0", c.maxSessionExpiry)
	case c.password != "" && c.username == "":
		return c, errors.New("-password needs -username")
	}
	return c, nil
}

func newServer(c config, log *slog.Logger) (*mqtt.Server, error) {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = int32(c.maxPendingWrites)
	caps.ReceiveMaximum = uint16(c.receiveMaximum)
	caps.MaximumInflight = uint16(c.maxInflight)
	caps.MaximumPacketSize = uint32(c.maxPacketSize)
	caps.MaximumSessionExpiryInterval = uint32(c.maxSessionExpiry / time.Second)

	s := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: log})
	var h mqtt.Hook = new(allowAll)
	if c.username != "" {
		h = &singleUser{username: []byte(c.username), password: []byte(c.password), filter: c.aclFilter}
	}
	if err := s.AddHook(h, nil); err != nil {
		return nil, fmt.Errorf("adding hook %s: %w", h.ID(), err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: c.addr})
	if err := s.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("adding TCP listener on %s: %w", c.addr, err)
	}
	return s, nil
}

func main() {
	os.Exit(realMain(os.Args[1:], os.Stderr))
}

func realMain(args []string, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "baremochi: %v\n", err)
		return 64
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		fmt.Fprintf(stderr, "baremochi: -log-level %q: %v\n", c.logLevel, err)
		return 64
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	s, err := newServer(c, log)
	if err != nil {
		fmt.Fprintf(stderr, "baremochi: %v\n", err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	if err := s.Serve(); err != nil {
		fmt.Fprintf(stderr, "baremochi: serving on %s: %v\n", c.addr, err)
		return 1
	}
	fmt.Fprintf(stderr, "baremochi: mochi-mqtt %s listening on %s (auth: %t)\n", mqtt.Version, c.addr, c.username != "")
	sig := <-sigs
	fmt.Fprintf(stderr, "baremochi: %s, stopping\n", sig)
	if err := s.Close(); err != nil {
		fmt.Fprintf(stderr, "baremochi: closing: %v\n", err)
		return 1
	}
	return 0
}
