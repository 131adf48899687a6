package portal

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// Roles a signed-in person has in the portal.
const (
	RoleClient = "client" // one client of the agency, bound to its account
	RoleAdmin  = "admin"  // the agency's administrator
)

// Flash is a message shown once, on the page after a redirect.
type Flash struct {
	Kind string // "ok" or "error"
	Text string
}

// session is one browser's state, kept server-side: the cookie carries
// only its random id. Tokens never reach the browser.
type session struct {
	id       string
	csrf     string
	lastSeen time.Time

	// Who is signed in; Role is empty for an anonymous visitor.
	Workspace, Account, Subject, Role string

	tok    string
	tokExp time.Time

	flashes []Flash
	// secret is a webhook signing secret to show once.
	secret string
	// cardPurchase is the card purchase the browser left to pay.
	cardPurchase string
	// versions is the newest version of each account ("workspace/account")
	// this session has read or written: later reads ask the ledger for at
	// least that version (min_version), so that a page never shows an
	// account older than one the person saw or changed before, when reads
	// are served by a read replica that lags.
	versions map[string]int64
}

// sessions is the in-memory session store. A restart signs everyone out,
// which a reference portal can afford; a replicated portal would keep them
// in a shared store.
type sessions struct {
	mu     sync.Mutex
	byID   map[string]*session
	idle   time.Duration
	max    int
	now    func() time.Time
	secure bool
}

const cookieName = "portal_session"

func newSessions(idle time.Duration, maxSessions int, secure bool, now func() time.Time) *sessions {
	return &sessions{byID: map[string]*session{}, idle: idle, max: maxSessions, now: now, secure: secure}
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// get returns the request's session, creating an anonymous one (and its
// cookie) when it has none or it expired.
func (s *sessions) get(w http.ResponseWriter, r *http.Request) *session {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, err := r.Cookie(cookieName); err == nil {
		if ss, ok := s.byID[c.Value]; ok && now.Sub(ss.lastSeen) < s.idle {
			ss.lastSeen = now
			return ss
		}
	}
	return s.create(w, now)
}

// create starts a new anonymous session; the caller holds mu.
func (s *sessions) create(w http.ResponseWriter, now time.Time) *session {
	if len(s.byID) >= s.max {
		s.evict(now)
	}
	ss := &session{id: randomID(), csrf: randomID(), lastSeen: now}
	s.byID[ss.id] = ss
	s.setCookie(w, ss.id, int(s.idle.Seconds()))
	return ss
}

// evict drops expired sessions, and the least recently seen one if none is.
func (s *sessions) evict(now time.Time) {
	var oldest *session
	for id, ss := range s.byID {
		if now.Sub(ss.lastSeen) >= s.idle {
			delete(s.byID, id)
			continue
		}
		if oldest == nil || ss.lastSeen.Before(oldest.lastSeen) {
			oldest = ss
		}
	}
	if len(s.byID) >= s.max && oldest != nil {
		delete(s.byID, oldest.id)
	}
}

// signIn replaces the request's session with a new one for who: a new id
// and CSRF token, so that an id planted before the sign-in is worthless.
func (s *sessions) signIn(w http.ResponseWriter, old *session, workspace, account, subject, role string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, old.id)
	ss := s.create(w, s.now())
	ss.Workspace, ss.Account, ss.Subject, ss.Role = workspace, account, subject, role
	return ss
}

// signOut forgets the session and clears its cookie.
func (s *sessions) signOut(w http.ResponseWriter, ss *session) {
	s.mu.Lock()
	delete(s.byID, ss.id)
	s.mu.Unlock()
	s.setCookie(w, "", -1)
}

func (s *sessions) setCookie(w http.ResponseWriter, value string, maxAge int) {
	// Secure follows the configuration (on by default); HttpOnly and
	// SameSite=Lax always.
	http.SetCookie(w, &http.Cookie{ //nolint:gosec // G124: see above
		Name: cookieName, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
}

// The session's fields are read and written under the store's lock: one
// browser may send requests in parallel.

func (s *sessions) addFlash(ss *session, kind, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss.flashes = append(ss.flashes, Flash{Kind: kind, Text: text})
}

func (s *sessions) takeFlashes(ss *session) ([]Flash, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, sec := ss.flashes, ss.secret
	ss.flashes, ss.secret = nil, ""
	return f, sec
}

// minVersion is the version reads of ws/acct must reach for this session.
func (s *sessions) minVersion(ss *session, ws, acct string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ss.versions[ws+"/"+acct]
}

// sawVersion records that this session saw ws/acct at version v; reset
// forgets a newer one (the ledger was restored to before it).
func (s *sessions) sawVersion(ss *session, ws, acct string, v int64, reset bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := ws + "/" + acct
	if v <= 0 || (!reset && v <= ss.versions[k]) {
		return
	}
	if ss.versions == nil {
		ss.versions = map[string]int64{}
	}
	ss.versions[k] = v
}

func (s *sessions) setSecret(ss *session, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss.secret = secret
}

func (s *sessions) setCardPurchase(ss *session, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss.cardPurchase = id
}

func (s *sessions) cardPurchaseOf(ss *session) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ss.cardPurchase
}

// validCSRF compares a form's token with the session's in constant time.
func (s *sessions) validCSRF(ss *session, got string) bool {
	s.mu.Lock()
	want := ss.csrf
	s.mu.Unlock()
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// token returns the session's bearer token, minting a new one when it has
// none or it expires within a minute.
func (s *sessions) token(ss *session, mint Minter) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss.tok != "" && s.now().Add(time.Minute).Before(ss.tokExp) {
		return ss.tok, nil
	}
	tok, exp, err := mint.Mint(ss.Role, ss.Subject, ss.Workspace, ss.Account)
	if err != nil {
		return "", err
	}
	ss.tok, ss.tokExp = tok, exp
	return tok, nil
}
