package e2e

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/pgtest"
)

// pgProxy sits between ledgerd and PostgreSQL and reads the frontend
// protocol (client → server) message by message, so that it can cut a
// connection exactly at a write transaction's COMMIT:
//
//   - cut after: the message carrying the COMMIT (a simple Query, or the
//     Bind of a statement prepared as COMMIT) and everything up to the next
//     Sync or Flush are forwarded, then the client's connection is closed
//     before any byte of the server's answer reaches it. The server still
//     receives the COMMIT and (almost always) commits: the client faces an
//     ambiguous outcome.
//   - cut before: both connections are closed without forwarding the
//     COMMIT: the transaction rolls back, the client gets an error.
//
// One COMMIT in oneIn is cut, so that load keeps flowing. Server → client
// traffic is parsed too, only to learn what the server answered to a COMMIT
// whose answer the client never got.
//
// Transactions begun READ ONLY (ledgerd's reads) are never cut: the proxy
// aims at the write path.
//
// Two controls make a schedule deterministic instead:
//
//   - hold/release: while held, a session that starts a write transaction
//     (a read-write BEGIN, by simple Query or by Bind) is stopped before
//     the BEGIN is forwarded, and everything it sends after it is left
//     unread (buffered) until release. Other traffic (pings, prepares,
//     reads outside a write transaction, new connections) flows, so that
//     a batch that started is stuck before its BEGIN reaches the server
//     and nothing else is.
//   - arm: let the next skip write COMMITs through, then cut the one
//     after, before or after forwarding it, once; the armed cut takes
//     precedence over the probabilistic mode, and reports what it did.
type pgProxy struct {
	t       testing.TB
	ln      net.Listener
	network string // of the upstream server: "unix" or "tcp"
	addr    string

	mode  atomic.Int32 // a proxyMode
	oneIn atomic.Int64

	rngMu sync.Mutex
	rng   *rand.Rand

	conns       atomic.Int64 // client connections accepted
	commits     atomic.Int64 // COMMITs of write transactions seen
	cutsAfter   atomic.Int64
	cutsBefore  atomic.Int64
	afterCommit atomic.Int64 // cut-after whose COMMIT the server reported done
	afterFailed atomic.Int64 // cut-after whose COMMIT the server refused or rolled back

	holdMu     sync.Mutex
	gate       chan struct{} // non-nil while held; closed on release
	heldBegins atomic.Int64  // sessions stopped at a write BEGIN by the hold

	armMu sync.Mutex
	armed *armedCut // the next one-shot cut, nil when none

	mu       sync.Mutex
	closed   bool
	sessions map[*pgSession]struct{}
	wg       sync.WaitGroup
}

// proxyMode says what the proxy does at a COMMIT it chose to cut.
type proxyMode int32

const (
	proxyPass      proxyMode = iota // forward everything
	proxyCutAfter                   // forward the COMMIT, lose the answer
	proxyCutBefore                  // never forward the COMMIT
	proxyCutEither                  // either, at random
)

// Protocol constants (https://www.postgresql.org/docs/current/protocol-message-formats.html).
const (
	pgSSLRequest    = 80877103
	pgGSSENCRequest = 80877104
	pgCancelRequest = 80877102
	pgMaxMessage    = 1 << 30
)

// startPGProxy starts a proxy in front of the server that dbURL names and
// returns it with a URL for the same user and database through the proxy
// (TCP on loopback, sslmode=disable). It is closed when the test ends.
func startPGProxy(t testing.TB, dbURL string) (*pgProxy, string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("pgproxy: parse database URL: %v", err)
	}
	network, addr := pgUpstream(u)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{
		t: t, ln: ln, network: network, addr: addr,
		rng:      rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)), //nolint:gosec // G404: test schedule
		sessions: map[*pgSession]struct{}{},
	}
	p.oneIn.Store(1)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)

	// The same user, password and database, through the proxy.
	q := u.Query()
	for _, k := range []string{"host", "port", "hostaddr", "sslmode", "sslrootcert", "sslcert", "sslkey"} {
		q.Del(k)
	}
	q.Set("sslmode", "disable")
	if q.Get("user") == "" && u.User == nil {
		q.Set("user", "postgres")
	}
	pu := url.URL{Scheme: "postgres", User: u.User, Host: ln.Addr().String(), Path: u.Path, RawQuery: q.Encode()}
	return p, pu.String()
}

// pgUpstream is the server address a postgres URL names: a unix socket
// when the host is a directory, TCP otherwise.
func pgUpstream(u *url.URL) (network, addr string) {
	host, port := pgtest.Upstream(u)
	if strings.HasPrefix(host, "/") {
		return "unix", fmt.Sprintf("%s/.s.PGSQL.%s", host, port)
	}
	return "tcp", net.JoinHostPort(host, port)
}

// set switches the mode and the cut rate (one COMMIT in oneIn) at run time.
func (p *pgProxy) set(mode proxyMode, oneIn int64) {
	p.oneIn.Store(max(1, oneIn))
	p.mode.Store(int32(mode))
}

// hold stops every write transaction that begins from now on before its
// BEGIN reaches the server, until release.
func (p *pgProxy) hold() {
	p.holdMu.Lock()
	defer p.holdMu.Unlock()
	if p.gate == nil {
		p.gate = make(chan struct{})
	}
}

// release forwards what hold kept back, and lets traffic flow again.
func (p *pgProxy) release() {
	p.holdMu.Lock()
	defer p.holdMu.Unlock()
	if p.gate != nil {
		close(p.gate)
		p.gate = nil
	}
}

// holding returns the gate a write BEGIN must wait on, nil when not held.
func (p *pgProxy) holding() chan struct{} {
	p.holdMu.Lock()
	defer p.holdMu.Unlock()
	return p.gate
}

// cutResult is what an armed cut did.
type cutResult struct {
	mode proxyMode // proxyCutBefore or proxyCutAfter
	// For a cut after: verdict says the server's answer to the COMMIT was
	// seen (rather than the connection ending first), committed that the
	// answer was COMMIT.
	verdict, committed bool
}

func (r cutResult) String() string {
	switch {
	case r.mode == proxyCutBefore:
		return "cut before the COMMIT was forwarded"
	case !r.verdict:
		return "cut after the COMMIT was forwarded, the server's verdict unseen"
	case r.committed:
		return "cut after the COMMIT was forwarded, the server committed"
	default:
		return "cut after the COMMIT was forwarded, the server refused it"
	}
}

// armedCut is a one-shot cut waiting for its COMMIT.
type armedCut struct {
	skip   int
	mode   proxyMode
	result chan cutResult // receives once
	once   sync.Once
}

func (a *armedCut) report(r cutResult) {
	a.once.Do(func() { a.result <- r })
}

// arm lets the next skip write COMMITs through (whatever the mode), then
// cuts the one after in mode (proxyCutBefore, proxyCutAfter, or
// proxyCutEither to draw one), once. The channel receives what happened;
// for a cut after, once the server's verdict on the COMMIT is known. A
// cut still armed is replaced.
func (p *pgProxy) arm(skip int, mode proxyMode) <-chan cutResult {
	if mode == proxyPass {
		p.t.Fatalf("pgproxy: arm with proxyPass")
	}
	a := &armedCut{skip: max(0, skip), mode: mode, result: make(chan cutResult, 1)}
	p.armMu.Lock()
	defer p.armMu.Unlock()
	p.armed = a
	return a.result
}

// disarm drops a cut still armed, if any.
func (p *pgProxy) disarm() {
	p.armMu.Lock()
	defer p.armMu.Unlock()
	p.armed = nil
}

// counts is a one-line summary for logs.
func (p *pgProxy) counts() string {
	return fmt.Sprintf("connections %d, write COMMITs %d, cut after %d (server committed %d, refused %d), cut before %d",
		p.conns.Load(), p.commits.Load(), p.cutsAfter.Load(), p.afterCommit.Load(), p.afterFailed.Load(), p.cutsBefore.Load())
}

func (p *pgProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.conns.Add(1)
		s, err := p.connect(c)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.wg.Add(2)
		go func() { defer p.wg.Done(); s.clientToServer() }()
		go func() { defer p.wg.Done(); s.serverToClient() }()
	}
}

func (p *pgProxy) connect(c net.Conn) (*pgSession, error) {
	up, err := net.DialTimeout(p.network, p.addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	s := &pgSession{p: p, client: c, server: up, stmts: map[string]stmtKind{}}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = up.Close()
		return nil, net.ErrClosed
	}
	p.sessions[s] = struct{}{}
	return s, nil
}

func (p *pgProxy) close() {
	p.release() // no session stays stopped at the gate
	p.mu.Lock()
	p.closed = true
	sessions := make([]*pgSession, 0, len(p.sessions))
	for s := range p.sessions {
		sessions = append(sessions, s)
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	for _, s := range sessions {
		s.closeBoth()
	}
	p.wg.Wait()
}

// decide says whether this COMMIT is to be cut, and how; a cut armed
// with arm comes with its armedCut, to report what happened.
func (p *pgProxy) decide() (proxyMode, *armedCut) {
	p.commits.Add(1)
	p.armMu.Lock()
	a := p.armed
	if a != nil {
		if a.skip > 0 {
			a.skip--
			p.armMu.Unlock()
			return proxyPass, nil
		}
		p.armed = nil
	}
	p.armMu.Unlock()
	mode := proxyMode(p.mode.Load())
	if a != nil {
		mode = a.mode
	}
	if mode == proxyPass {
		return proxyPass, nil
	}
	p.rngMu.Lock()
	defer p.rngMu.Unlock()
	if a == nil && p.rng.Int64N(p.oneIn.Load()) != 0 {
		return proxyPass, nil
	}
	if mode == proxyCutEither {
		mode = proxyCutAfter
		if p.rng.IntN(2) == 0 {
			mode = proxyCutBefore
		}
	}
	return mode, a
}

// stmtKind is what a prepared statement does, as far as the proxy cares.
type stmtKind int

const (
	stmtOther stmtKind = iota
	stmtCommit
	stmtBeginRW
	stmtBeginRO
)

// pgSession is one proxied connection.
type pgSession struct {
	p              *pgProxy
	client, server net.Conn

	// cut is set before a COMMIT the client must not hear about is
	// forwarded; serverToClient checks it after every read and before every
	// write, so no byte the server sent after the COMMIT reaches the client.
	cut atomic.Bool
	// awaiting is set on a cut-after: serverToClient waits for the
	// server's verdict on the COMMIT, then closes the server connection.
	awaiting atomic.Bool
	// armed is the armed cut made after this session's COMMIT, reported
	// on the server's verdict (or, failing that, when the session ends).
	armed     atomic.Pointer[armedCut]
	closeOnce sync.Once

	// Owned by clientToServer.
	stmts    map[string]stmtKind // prepared statements by name ("" is the unnamed one)
	readOnly bool                // the current transaction was begun READ ONLY
}

func (s *pgSession) closeBoth() {
	if a := s.armed.Load(); a != nil {
		a.report(cutResult{mode: proxyCutAfter}) // no-op once the verdict was reported
	}
	s.closeOnce.Do(func() {
		_ = s.client.Close()
		_ = s.server.Close()
		s.p.mu.Lock()
		delete(s.p.sessions, s)
		s.p.mu.Unlock()
	})
}

// readStartup reads one untyped startup-phase packet (length, payload).
func readStartup(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n < 8 || n > 10<<10 {
		return nil, fmt.Errorf("pgproxy: startup packet of %d bytes", n)
	}
	msg := make([]byte, n)
	copy(msg, hdr[:])
	_, err := io.ReadFull(r, msg[4:])
	return msg, err
}

// readMessage reads one typed message; msg holds it whole (type, length,
// payload), body only the payload.
func readMessage(r *bufio.Reader) (typ byte, msg, body []byte, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:]))
	if n < 4 || n > pgMaxMessage {
		return 0, nil, nil, fmt.Errorf("pgproxy: message %q of length %d", hdr[0], n)
	}
	msg = make([]byte, 1+n)
	copy(msg, hdr[:])
	if _, err := io.ReadFull(r, msg[5:]); err != nil {
		return 0, nil, nil, err
	}
	return hdr[0], msg, msg[5:], nil
}

// cstrings splits the first n NUL-terminated strings off b.
func cstrings(b []byte, n int) []string {
	out := make([]string, 0, n)
	for range n {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			out = append(out, string(b))
			b = nil
			continue
		}
		out = append(out, string(b[:i]))
		b = b[i+1:]
	}
	return out
}

// classify tells what a query string does to the transaction. A query
// string with several statements counts as a COMMIT if any of them is one.
func classify(sql string) stmtKind {
	kind := stmtOther
	for _, stmt := range strings.Split(sql, ";") {
		words := strings.Fields(strings.ToUpper(stmt))
		if len(words) == 0 {
			continue
		}
		switch words[0] {
		case "COMMIT", "END":
			if len(words) == 1 || words[1] == "WORK" || words[1] == "TRANSACTION" || words[1] == "AND" {
				return stmtCommit
			}
		case "BEGIN", "START":
			kind = stmtBeginRW
			if strings.Contains(strings.Join(words, " "), "READ ONLY") {
				kind = stmtBeginRO
			}
		}
	}
	return kind
}

// onStatement tracks the transaction's access mode and reports whether a
// statement about to run is the COMMIT of a write transaction.
func (s *pgSession) onStatement(kind stmtKind) bool {
	switch kind {
	case stmtBeginRW:
		s.readOnly = false
	case stmtBeginRO:
		s.readOnly = true
	case stmtCommit:
		ro := s.readOnly
		s.readOnly = false
		return !ro
	}
	return false
}

func (s *pgSession) clientToServer() {
	defer func() {
		if !s.awaiting.Load() {
			s.closeBoth()
		}
	}()
	r := bufio.NewReaderSize(s.client, 64<<10)
	for {
		msg, err := readStartup(r)
		if err != nil {
			return
		}
		code := binary.BigEndian.Uint32(msg[4:8])
		switch code {
		case pgSSLRequest, pgGSSENCRequest:
			// No encryption through the proxy: the client goes on in clear.
			if _, err := s.client.Write([]byte{'N'}); err != nil {
				return
			}
			continue
		case pgCancelRequest:
			_, _ = s.server.Write(msg)
			_, _ = io.Copy(s.server, r)
			return
		}
		if _, err := s.server.Write(msg); err != nil {
			return
		}
		break
	}
	out := make([]byte, 0, 64<<10)
	flush := func() bool {
		if len(out) == 0 {
			return true
		}
		_, err := s.server.Write(out)
		out = out[:0]
		return err == nil
	}
	for {
		typ, msg, body, err := readMessage(r)
		if err != nil {
			return
		}
		// What a Query or a Bind runs, decided before the hold so that a
		// held BEGIN is known as one.
		run, exec := stmtOther, false
		switch typ {
		case 'Q':
			run, exec = classify(cstrings(body, 1)[0]), true
		case 'B':
			run, exec = s.stmts[cstrings(body, 2)[1]], true
		}
		if run == stmtBeginRW {
			if gate := s.p.holding(); gate != nil {
				// Stopped before the BEGIN: forward what came before it,
				// leave the rest unread until release.
				if !flush() {
					return
				}
				s.p.heldBegins.Add(1)
				<-gate
				s.p.heldBegins.Add(-1)
			}
		}
		commit := false
		if exec {
			commit = s.onStatement(run)
		}
		switch typ {
		case 'P':
			f := cstrings(body, 2)
			s.stmts[f[0]] = classify(f[1])
		case 'C':
			if len(body) > 1 && body[0] == 'S' {
				delete(s.stmts, cstrings(body[1:], 1)[0])
			}
		case 'X':
			_ = flush()
			_, _ = s.server.Write(msg)
			return
		}
		mode, armed := proxyPass, (*armedCut)(nil)
		if commit {
			mode, armed = s.p.decide()
		}
		switch mode {
		case proxyCutBefore:
			s.p.cutsBefore.Add(1)
			s.cut.Store(true)
			if armed != nil {
				armed.report(cutResult{mode: proxyCutBefore})
			}
			return // neither this message nor anything after it reaches the server
		case proxyCutAfter:
			s.p.cutsAfter.Add(1)
			if armed != nil {
				s.armed.Store(armed)
			}
			// awaiting first: serverToClient, seeing cut, must wait for
			// the verdict rather than hang up before the COMMIT is sent.
			s.awaiting.Store(true)
			s.cut.Store(true)
			// serverToClient closes the server side on the verdict; this
			// bounds the wait if none comes.
			time.AfterFunc(10*time.Second, s.closeBoth)
			out = append(out, msg...)
			// The rest of this write, up to the Sync or Flush that makes
			// the server act on it (a simple Query acts by itself).
			for typ != 'Q' && typ != 'S' && typ != 'H' {
				_ = s.client.SetReadDeadline(time.Now().Add(5 * time.Second))
				if typ, msg, _, err = readMessage(r); err != nil {
					s.closeBoth()
					return
				}
				out = append(out, msg...)
			}
			_ = s.client.Close()
			if !flush() {
				s.closeBoth()
			}
			return
		}
		out = append(out, msg...)
		if r.Buffered() == 0 || len(out) >= 64<<10 {
			if !flush() {
				return
			}
		}
	}
}

// verdict reports the server's answer to a COMMIT cut after to the armed
// cut that made it, if any.
func (s *pgSession) verdict(committed bool) {
	if a := s.armed.Load(); a != nil {
		a.report(cutResult{mode: proxyCutAfter, verdict: true, committed: committed})
	}
}

func (s *pgSession) serverToClient() {
	defer s.closeBoth()
	r := bufio.NewReaderSize(s.server, 64<<10)
	// Until the client has sent its startup packet the server says
	// nothing, and the proxy answers SSL and GSS requests itself: every
	// byte from the server is a typed message.
	out := make([]byte, 0, 64<<10)
	for {
		typ, msg, body, err := readMessage(r)
		if err != nil {
			return
		}
		if s.cut.Load() {
			out = out[:0]
			if !s.awaiting.Load() {
				return
			}
			switch typ {
			case 'C':
				tag := cstrings(body, 1)[0]
				if tag == "COMMIT" {
					s.p.afterCommit.Add(1)
					s.verdict(true)
					return
				}
				if tag == "ROLLBACK" {
					s.p.afterFailed.Add(1)
					s.verdict(false)
					return
				}
			case 'E':
				s.p.afterFailed.Add(1)
				s.verdict(false)
				return
			}
			continue
		}
		out = append(out, msg...)
		if r.Buffered() == 0 || len(out) >= 64<<10 {
			// Checked after the read of everything in out: if no cut was
			// decided yet, none of it can answer the COMMIT.
			if s.cut.Load() {
				out = out[:0]
				continue
			}
			if _, err := s.client.Write(out); err != nil {
				if errors.Is(err, net.ErrClosed) && s.awaiting.Load() {
					out = out[:0]
					continue
				}
				return
			}
			out = out[:0]
		}
	}
}
