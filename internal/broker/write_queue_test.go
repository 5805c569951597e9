package broker

import (
	"bytes"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

func encode(t *testing.T, pks ...packets.Packet) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, pk := range pks {
		pk.ProtocolVersion = 5
		var err error
		switch pk.FixedHeader.Type {
		case packets.Publish:
			err = pk.PublishEncode(&buf)
		case packets.Puback:
			err = pk.PubackEncode(&buf)
		case packets.Pingresp:
			err = pk.PingrespEncode(&buf)
		case packets.Disconnect:
			err = pk.DisconnectEncode(&buf)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// TestSplitLive: which packets of a write that does not fit are dropped.
func TestSplitLive(t *testing.T) {
	t.Parallel()
	pub := func(qos byte, topic string, mod func(*packets.Packet)) packets.Packet {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, TopicName: topic,
			Payload: []byte("payload")}
		if qos > 0 {
			pk.PacketID = 7
		}
		pk.Properties.User = []packets.UserProperty{{Key: "k", Val: "v"}}
		pk.Properties.ContentType = "text/plain"
		if mod != nil {
			mod(&pk)
		}
		return pk
	}
	live0, live1, live2 := pub(0, "a/b", nil), pub(1, "a/b", nil), pub(2, "a/b", nil)
	retained := pub(1, "a/b", func(pk *packets.Packet) { pk.FixedHeader.Retain = true })
	dup := pub(1, "a/b", func(pk *packets.Packet) { pk.FixedHeader.Dup = true })
	newAlias := pub(1, "a/b", func(pk *packets.Packet) { pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = 3, true })
	useAlias := pub(0, "", func(pk *packets.Packet) { pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = 3, true })
	puback := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: 9}
	ping := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingresp}}
	disconnect := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ReasonCode: 0x8E}

	for _, c := range []struct {
		name      string
		in        []packets.Packet
		aliases   bool
		kept      []packets.Packet
		lost      [3]int64
		publishes bool
	}{
		{"live messages", []packets.Packet{live0, live1, live2}, false, nil, [3]int64{1, 1, 1}, false},
		{"control packets", []packets.Packet{puback, ping, disconnect}, false, []packets.Packet{puback, ping, disconnect}, [3]int64{}, false},
		{"a batch", []packets.Packet{live0, puback, live1, ping}, false, []packets.Packet{puback, ping}, [3]int64{1, 1, 0}, false},
		{"retained and re-sent", []packets.Packet{retained, live0, dup}, false, []packets.Packet{retained, dup}, [3]int64{1, 0, 0}, true},
		{"alias introduced", []packets.Packet{newAlias, useAlias}, true, []packets.Packet{newAlias}, [3]int64{1, 0, 0}, false},
		{"aliases not in use", []packets.Packet{newAlias}, false, nil, [3]int64{0, 1, 0}, false},
	} {
		in := encode(t, c.in...)
		kept, lost, publishes := splitLive(in, c.aliases)
		var want []byte
		if len(c.kept) > 0 {
			want = encode(t, c.kept...)
		}
		if !bytes.Equal(kept, want) || lost.byQoS != c.lost || publishes != c.publishes {
			t.Errorf("%s: kept %x, lost %v, publishes %v; want %x, %v, %v", c.name, kept, lost.byQoS, publishes, want, c.lost, c.publishes)
		}
		if wantBytes := int64(len(in) - len(want)); lost.bytes != wantBytes {
			t.Errorf("%s: lost %d bytes, want %d", c.name, lost.bytes, wantBytes)
		}
	}
	// A write that is not whole packets is kept whole.
	in := encode(t, live0)
	if kept, lost, _ := splitLive(in[:len(in)-1], false); !bytes.Equal(kept, in[:len(in)-1]) || lost.count() != 0 {
		t.Errorf("partial packet: kept %x, lost %v", kept, lost.byQoS)
	}
}
