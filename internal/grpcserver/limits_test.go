package grpcserver

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc/keepalive"

	"github.com/creditledger/creditledger/internal/grpcserver/fakestore"
	"github.com/creditledger/creditledger/internal/ledger"
)

// HTTP/2 frame types and the setting this test reads (RFC 9113).
const (
	h2Settings             = 0x4
	h2GoAway               = 0x7
	h2MaxConcurrentStreams = 0x3
)

// rawConn opens a plaintext HTTP/2 connection to a server built with o and
// returns it after sending the client preface and an empty SETTINGS frame.
func rawConn(t *testing.T, o Options) net.Conn {
	t.Helper()
	o.Logger, o.Registerer, o.Authorizer = zap.NewNop(), prometheus.NewRegistry(), NoAuth{}
	srv, err := NewServer(ledger.NewService(fakestore.New()), o)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := net.DialTimeout("tcp", lis.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte{0, 0, 0, h2Settings, 0, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	return conn
}

// readFrame returns the next frame's type, flags and payload.
func readFrame(t *testing.T, r io.Reader) (typ, flags byte, payload []byte) {
	t.Helper()
	var hdr [9]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		t.Fatalf("read frame payload: %v", err)
	}
	return hdr[3], hdr[4], payload
}

// serverSettings returns the settings of the server's first SETTINGS frame.
func serverSettings(t *testing.T, conn net.Conn) map[uint16]uint32 {
	t.Helper()
	for {
		typ, flags, p := readFrame(t, conn)
		if typ != h2Settings || flags&0x1 != 0 { // skip ACKs and other frames
			continue
		}
		out := map[uint16]uint32{}
		for i := 0; i+6 <= len(p); i += 6 {
			out[binary.BigEndian.Uint16(p[i:])] = binary.BigEndian.Uint32(p[i+2:])
		}
		return out
	}
}

func TestMaxConcurrentStreams(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		set  uint32
		want uint32
	}{
		{"default", 0, DefaultMaxConcurrentStreams},
		{"configured", 7, 7},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := serverSettings(t, rawConn(t, Options{MaxConcurrentStreams: tt.set}))[h2MaxConcurrentStreams]
			if !ok || got != tt.want {
				t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d (sent: %v), want %d", got, ok, tt.want)
			}
		})
	}
}

// TestIdleConnectionClosed: a connection without calls is sent GOAWAY
// after MaxConnectionIdle.
func TestIdleConnectionClosed(t *testing.T) {
	t.Parallel()
	conn := rawConn(t, Options{Keepalive: keepalive.ServerParameters{MaxConnectionIdle: 100 * time.Millisecond}})
	for {
		typ, _, _ := readFrame(t, conn) // fails at the 10s deadline
		if typ == h2GoAway {
			return
		}
	}
}
