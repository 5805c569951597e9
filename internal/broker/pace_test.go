package broker

import (
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// TestOutboundProbe: the length of mochi's unexported outbound channel
// can be read (pace.go); this fails first if a mochi upgrade changes it.
func TestOutboundProbe(t *testing.T) {
	t.Parallel()
	probe, err := newOutboundProbe()
	if err != nil {
		t.Fatal(err)
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = 37
	srv := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: testLogger()})
	cl := srv.NewClient(nil, "test", "probe", false)
	if n, c := probe.len(cl); n != 0 || c != 37 {
		t.Fatalf("outbound channel: length %d, capacity %d; want 0 and 37", n, c)
	}
}
