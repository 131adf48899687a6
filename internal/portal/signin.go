package portal

import (
	"net/http"
	"slices"
	"strings"
)

// validID is the ledger's identifier syntax: 1-64 of [A-Za-z0-9._-],
// starting with a letter or digit.
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

type signInData struct {
	Workspace string
	Clients   []string // known clients of the workspace, to pick from
	Error     string
}

// signInPage is the development sign-in: pick a workspace and a client,
// or the agency's administrator. Without DevSignIn it only says where
// sign-in would come from.
func (p *Portal) signInPage(w http.ResponseWriter, r *http.Request, ss *session) {
	d := signInData{Workspace: p.cfg.DevWorkspace}
	if ws := r.URL.Query().Get("workspace"); validID(ws) {
		d.Workspace = ws
	}
	if p.cfg.DevSignIn && validID(d.Workspace) {
		// The known clients, read with a short-lived admin token of the
		// workspace: a convenience of development only.
		if tok, _, err := p.cfg.Minter.Mint(RoleAdmin, "portal-dev-sign-in", d.Workspace, ""); err == nil {
			if accts, err := p.ledger.Accounts(ctx(r), tok, d.Workspace); err == nil {
				for _, a := range accts {
					d.Clients = append(d.Clients, a.Account)
				}
			}
		}
	}
	p.render(w, r, ss, "signin", "Sign in", d)
}

// signIn starts a session as the person picked.
func (p *Portal) signIn(w http.ResponseWriter, r *http.Request, ss *session) {
	if !p.cfg.DevSignIn {
		http.NotFound(w, r)
		return
	}
	ws := strings.TrimSpace(r.PostFormValue("workspace"))
	as := r.PostFormValue("as")
	acct := strings.TrimSpace(r.PostFormValue("account"))
	fail := func(text string) {
		p.sessions.addFlash(ss, "error", text)
		back(w, r, "/signin")
	}
	switch {
	case !validID(ws):
		fail("Workspace: letters, digits, '.', '_' or '-', up to 64 characters.")
		return
	case !slices.Contains([]string{RoleClient, RoleAdmin}, as):
		fail("Choose whether you sign in as a client or as the agency's administrator.")
		return
	case as == RoleClient && !validID(acct):
		fail("Client account: letters, digits, '.', '_' or '-', up to 64 characters.")
		return
	}
	subject := acct
	if as == RoleAdmin {
		acct, subject = "", "admin@"+ws
	}
	ns := p.sessions.signIn(w, ss, ws, acct, subject, as)
	if _, err := p.tokenOf(ns); err != nil {
		p.log.Error("development sign-in: no token minted")
		p.sessions.signOut(w, ns)
		http.Error(w, "the portal cannot mint tokens: check its signing key", http.StatusInternalServerError)
		return
	}
	p.home(w, r, ns)
}

func (p *Portal) signOut(w http.ResponseWriter, r *http.Request, ss *session) {
	p.sessions.signOut(w, ss)
	back(w, r, "/signin")
}
