package ledgertest

import (
	"context"
	"testing"
	"time"

	"github.com/creditledger/creditledger/ledgerclient"
)

// Dial returns a client of the server, as a consumer service under test
// holds one: retries after 1–2ms rather than the production backoff, at
// most three attempts (so a fault the test injects is retried, and a test
// of failure does not wait), closed at the end of the test. opts come
// after those and may change them.
func (s *Server) Dial(tb testing.TB, opts ...ledgerclient.Option) *ledgerclient.Client {
	tb.Helper()
	all := append([]ledgerclient.Option{ledgerclient.WithBackoff(time.Millisecond, 2*time.Millisecond), ledgerclient.WithMaxAttempts(3)}, opts...)
	c, err := ledgerclient.Dial(context.Background(), s.Addr, all...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}
