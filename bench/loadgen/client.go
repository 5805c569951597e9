package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// ackResult is the outcome of one publish: when it was acknowledged (PUBACK
// for QoS 1, written to the socket for QoS 0 on the 3.1.1 client) and how.
type ackResult struct {
	at  time.Time
	err error
}

// client is the little of an MQTT client the scenarios need, so the same
// scenario runs over MQTT 5 (paho.golang) or 3.1.1 (paho.mqtt.golang).
type client interface {
	// Publish sends one message. A nil channel means it is complete when
	// Publish returns; otherwise the channel yields exactly one ackResult.
	// payload must not be reused until the publish is complete.
	Publish(ctx context.Context, topic string, qos byte, retain bool, payload []byte) (<-chan ackResult, error)
	// Subscribe subscribes to filters in one SUBSCRIBE packet; every message
	// arriving afterwards is passed to the handler given at dial time.
	Subscribe(ctx context.Context, filters []string, qos byte) error
	Close()
}

type dialOpts struct {
	addr     string
	proto    int
	clientID string
	username string
	password string
	timeout  time.Duration
	onMsg    func(topic string, payload []byte) // nil for publish-only clients
	log      *slog.Logger
}

func dial(ctx context.Context, o dialOpts) (client, error) {
	switch o.proto {
	case 5:
		return dialV5(ctx, o)
	case 4:
		return dialV311(o)
	default:
		return nil, fmt.Errorf("unsupported protocol version %d (want 4 or 5)", o.proto)
	}
}

// ---- MQTT 5: paho.golang over a plain net.Conn ----

type v5Client struct {
	c *paho.Client
}

func dialV5(ctx context.Context, o dialOpts) (client, error) {
	d := net.Dialer{Timeout: o.timeout}
	conn, err := d.DialContext(ctx, "tcp", o.addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", o.addr, err)
	}
	cfg := paho.ClientConfig{
		ClientID:      o.clientID,
		Conn:          conn,
		PacketTimeout: 30 * time.Second,
		OnClientError: func(err error) {
			o.log.Debug("client error", "client", o.clientID, "err", err)
		},
		OnServerDisconnect: func(d *paho.Disconnect) {
			o.log.Warn("server disconnected client", "client", o.clientID, "reason", d.ReasonCode)
		},
	}
	if o.onMsg != nil {
		onMsg := o.onMsg
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				onMsg(pr.Packet.Topic, pr.Packet.Payload)
				return true, nil
			},
		}
	}
	c := paho.NewClient(cfg)
	cp := &paho.Connect{
		ClientID:   o.clientID,
		KeepAlive:  30,
		CleanStart: true,
	}
	if o.username != "" {
		cp.Username = o.username
		cp.UsernameFlag = true
	}
	if o.password != "" {
		cp.Password = []byte(o.password)
		cp.PasswordFlag = true
	}
	cctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	ca, err := c.Connect(cctx, cp)
	if err != nil {
		_ = conn.Close()
		if ca != nil {
			return nil, fmt.Errorf("connect %s as %q: %w (reason code %d %s)", o.addr, o.clientID, err, ca.ReasonCode, reasonString(ca.Properties))
		}
		return nil, fmt.Errorf("connect %s as %q: %w", o.addr, o.clientID, err)
	}
	return &v5Client{c: c}, nil
}

func reasonString(p *paho.ConnackProperties) string {
	if p == nil {
		return ""
	}
	return p.ReasonString
}

func (v *v5Client) Publish(ctx context.Context, topic string, qos byte, retain bool, payload []byte) (<-chan ackResult, error) {
	p := &paho.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: payload}
	if qos == 0 {
		if _, err := v.c.Publish(ctx, p); err != nil {
			return nil, fmt.Errorf("publish %s: %w", topic, err)
		}
		return nil, nil
	}
	ch := make(chan ackResult, 1)
	go func() {
		_, err := v.c.Publish(ctx, p)
		if err != nil {
			err = fmt.Errorf("publish %s: %w", topic, err)
		}
		ch <- ackResult{at: time.Now(), err: err}
	}()
	return ch, nil
}

func (v *v5Client) Subscribe(ctx context.Context, filters []string, qos byte) error {
	opts := make([]paho.SubscribeOptions, len(filters))
	for i, f := range filters {
		opts[i] = paho.SubscribeOptions{Topic: f, QoS: qos}
	}
	sa, err := v.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: opts})
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", describeFilters(filters), err)
	}
	if len(sa.Reasons) != len(filters) {
		return fmt.Errorf("subscribe %s: %d reason codes for %d filters", describeFilters(filters), len(sa.Reasons), len(filters))
	}
	for i, code := range sa.Reasons {
		if code >= 0x80 {
			return fmt.Errorf("subscribe %s: %w (reason code 0x%02x)", filters[i], errRefused, code)
		}
	}
	return nil
}

func describeFilters(filters []string) string {
	if len(filters) == 1 {
		return filters[0]
	}
	return fmt.Sprintf("%s and %d more filters", filters[0], len(filters)-1)
}

func (v *v5Client) Close() {
	dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = v.c.Disconnect(&paho.Disconnect{ReasonCode: 0})
	select {
	case <-v.c.Done():
	case <-dctx.Done():
	}
}

// ---- MQTT 3.1.1: paho.mqtt.golang ----

type v311Client struct {
	c       mqtt.Client
	timeout time.Duration
}

func dialV311(o dialOpts) (client, error) {
	opts := mqtt.NewClientOptions().
		AddBroker("tcp://" + o.addr).
		SetClientID(o.clientID).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(o.timeout).
		SetWriteTimeout(30 * time.Second).
		SetOrderMatters(true).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			o.log.Warn("connection lost", "client", o.clientID, "err", err)
		})
	if o.username != "" {
		opts.SetUsername(o.username)
	}
	if o.password != "" {
		opts.SetPassword(o.password)
	}
	if o.onMsg != nil {
		onMsg := o.onMsg
		opts.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			onMsg(m.Topic(), m.Payload())
		})
	}
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(o.timeout) {
		c.Disconnect(0)
		return nil, fmt.Errorf("connect %s as %q: timed out after %s", o.addr, o.clientID, o.timeout)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("connect %s as %q: %w", o.addr, o.clientID, err)
	}
	return &v311Client{c: c, timeout: o.timeout}, nil
}

func (v *v311Client) Publish(ctx context.Context, topic string, qos byte, retain bool, payload []byte) (<-chan ackResult, error) {
	tok := v.c.Publish(topic, qos, retain, payload)
	ch := make(chan ackResult, 1)
	go func() {
		select {
		case <-tok.Done():
			err := tok.Error()
			if err != nil {
				err = fmt.Errorf("publish %s: %w", topic, err)
			}
			ch <- ackResult{at: time.Now(), err: err}
		case <-ctx.Done():
			ch <- ackResult{at: time.Now(), err: fmt.Errorf("publish %s: %w", topic, ctx.Err())}
		}
	}()
	return ch, nil
}

func (v *v311Client) Subscribe(ctx context.Context, filters []string, qos byte) error {
	m := make(map[string]byte, len(filters))
	for _, f := range filters {
		m[f] = qos
	}
	tok := v.c.SubscribeMultiple(m, nil) // nil: the default publish handler gets the messages
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return fmt.Errorf("subscribe %s: %w", describeFilters(filters), ctx.Err())
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("subscribe %s: %w", describeFilters(filters), err)
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		for f, code := range st.Result() {
			if code >= 0x80 {
				return fmt.Errorf("subscribe %s: %w (return code 0x%02x)", f, errRefused, code)
			}
		}
	}
	return nil
}

var errRefused = errors.New("refused by broker")

func (v *v311Client) Close() {
	v.c.Disconnect(250)
}
