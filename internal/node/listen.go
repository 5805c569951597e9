package node

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/roostmq/roost/internal/broker"
	"github.com/roostmq/roost/internal/config"
)

// ports are every TCP socket a node listens on, bound before it creates
// any state: a start that cannot have its ports must leave no node
// identity, cookie, admin password or store behind. The bound listeners
// are handed to the broker, the cluster transport and the API, so no
// other process can take a port between the check and its use.
type ports struct {
	mqtt    map[string]net.Listener // by broker listener name, "tcp:default"
	api     net.Listener
	cluster net.Listener
}

// bindPorts binds the MQTT listeners, api.bind and cluster.bind. It
// reports every port that cannot be bound, each with the config key
// that sets it, and then holds none of them.
func bindPorts(cfg *config.Config) (*ports, error) {
	p := &ports{mqtt: map[string]net.Listener{}}
	var errs []error
	bind := func(key, addr string) net.Listener {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			errs = append(errs, bindError(key, addr, err))
			return nil
		}
		return ln
	}
	for _, l := range cfg.Listeners.Active() {
		if ln := bind(listenerKey(l), l.Bind); ln != nil {
			p.mqtt[l.Transport+":"+l.Name] = ln
		}
	}
	p.api = bind("api.bind", cfg.API.Bind)
	p.cluster = bind("cluster.bind", cfg.Cluster.Bind)
	if len(errs) > 0 {
		p.close()
		return nil, errors.Join(errs...)
	}
	return p, nil
}

func listenerKey(l config.Listener) string {
	return "listeners." + l.Transport + "." + l.Name + ".bind"
}

// close closes the listeners that were not handed over (or all of them
// on a failed start; closing one twice does no harm).
func (p *ports) close() {
	for _, ln := range p.mqtt {
		ln.Close()
	}
	for _, ln := range []net.Listener{p.api, p.cluster} {
		if ln != nil {
			ln.Close()
		}
	}
}

// bindError names the key and address and the bare cause, e.g.
// "listeners.tcp.default.bind 0.0.0.0:1883: address already in use", and
// says what to do about the usual causes.
func bindError(key, addr string, err error) error {
	cause := err
	var oe *net.OpError
	if errors.As(cause, &oe) {
		cause = oe.Err
	}
	var se *os.SyscallError
	if errors.As(cause, &se) {
		cause = se.Err
	}
	hint := ""
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		hint = fmt.Sprintf(" (another process listens there: stop it, or set %s / %s to a free address)", key, config.EnvName(key))
	case errors.Is(err, syscall.EACCES):
		hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		hint = " (no interface of this machine has that address)"
	}
	return fmt.Errorf("%s %s: %w%s", key, addr, cause, hint)
}

// checkTLSFiles loads the certificates and keys of the ssl and wss
// listeners before any state is created, for the same reason as
// bindPorts (Run loads the cluster's, cluster.MutualTLS, just before).
func checkTLSFiles(cfg *config.Config) error {
	var errs []error
	for _, o := range brokerListeners(cfg, nil) {
		if err := o.Check(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// brokerListeners are the broker's listener options for the config's
// active listeners, with the bound listeners of p (if given).
func brokerListeners(cfg *config.Config, p *ports) []broker.ListenerOptions {
	var ls []broker.ListenerOptions
	for _, l := range cfg.Listeners.Active() {
		name := l.Transport + ":" + l.Name
		o := broker.ListenerOptions{Name: name, Type: l.Transport, Bind: l.Bind,
			CertFile: l.CertFile, KeyFile: l.KeyFile, CACertFile: l.CACertFile}
		if p != nil {
			o.Listener = p.mqtt[name]
		}
		ls = append(ls, o)
	}
	return ls
}
