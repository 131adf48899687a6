package consumer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/creditledger/creditledger/internal/token"
)

// MaxBody bounds a request body of a service's API: its JSON inputs are a
// few fields.
const MaxBody = 64 << 10

// Verifier checks a bearer token; *token.Verifier provides it.
type Verifier interface {
	Verify(raw string) (token.Claims, error)
}

// APIConfig configures an API.
type APIConfig struct {
	// Name is the service's, the realm of its 401 challenges.
	Name string
	Log  *zap.Logger
	// Verifier checks the bearer tokens. It is required unless NoAuth is
	// set.
	Verifier Verifier
	// NoAuth serves without authentication: development only.
	NoAuth bool
}

// API answers the calls of a service's REST API: it authenticates and
// authorizes the caller, reads bounded and strict JSON bodies, and writes
// JSON answers, errors as {"error": {"code", "message", "metadata"}}.
type API struct {
	name     string
	log      *zap.Logger
	verifier Verifier // nil: no authentication (development)
}

// NewAPI returns the API helper of a service.
func NewAPI(c APIConfig) (*API, error) {
	switch {
	case c.Verifier == nil && !c.NoAuth:
		return nil, fmt.Errorf("%s: a token Verifier is required (NoAuth is for development only)", c.Name)
	case c.Verifier != nil && c.NoAuth:
		return nil, fmt.Errorf("%s: Verifier and NoAuth are exclusive", c.Name)
	}
	a := &API{name: c.Name, log: c.Log, verifier: c.Verifier}
	if a.log == nil {
		a.log = zap.NewNop()
	}
	return a, nil
}

// Authenticate returns the caller's claims: nil without error only when
// authentication is off (development).
func (a *API) Authenticate(r *http.Request) (*token.Claims, error) {
	if a.verifier == nil {
		return nil, nil
	}
	raw, ok := BearerToken(r.Header.Get("Authorization"))
	if !ok {
		return nil, &Error{Kind: KindUnauthenticated, Code: CodeUnauthenticated, Message: "a bearer token is required"}
	}
	c, err := a.verifier.Verify(raw)
	if err != nil {
		// The reason is for the log only; the token itself never is.
		a.log.Info("bearer token refused", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
		return nil, &Error{Kind: KindUnauthenticated, Code: CodeUnauthenticated, Message: "the bearer token is not valid", Metadata: map[string]string{"token": "invalid"}}
	}
	return &c, nil
}

// Authorize checks that c may do what acc requires in workspace, and on
// account when one is named (a path's or a stored resource's). A caller
// of another workspace, or a client of another account, gets hidden:
// the same not-found a missing resource gives, so that it learns nothing
// of what exists. A caller in the right place without the role or scope
// is denied (403).
func Authorize(c *token.Claims, acc Access, workspace, account string, hidden *Error) error {
	switch acc.Check(c, workspace, account) {
	case Hidden:
		return hidden
	case RoleDenied:
		return &Error{Kind: KindPermissionDenied, Code: CodePermissionDenied, Message: "the " + string(c.Role) + " role may not do this"}
	case ScopeDenied:
		return &Error{
			Kind: KindPermissionDenied, Code: CodePermissionDenied, Message: "the token lacks the required scope",
			Metadata: map[string]string{"required_scope": strings.Join(acc.Scopes, " or ")},
		}
	}
	return nil
}

// Allow authenticates r and authorizes it (see Authorize); on failure it
// answers and returns false.
func (a *API) Allow(w http.ResponseWriter, r *http.Request, acc Access, workspace, account string, hidden *Error) (*token.Claims, bool) {
	c, err := a.Authenticate(r)
	if err == nil {
		err = Authorize(c, acc, workspace, account, hidden)
	}
	if err != nil {
		a.Error(w, err)
		return nil, false
	}
	return c, true
}

// Decode reads a JSON body of at most MaxBody bytes into v: unknown
// fields and trailing data are refused. On failure it answers 400 and
// returns false.
func (a *API) Decode(w http.ResponseWriter, r *http.Request, v any) bool {
	return a.decode(w, r, v, false)
}

// DecodeOptional is Decode for a body that may be empty.
func (a *API) DecodeOptional(w http.ResponseWriter, r *http.Request, v any) bool {
	return a.decode(w, r, v, true)
}

func (a *API) decode(w http.ResponseWriter, r *http.Request, v any, optional bool) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err == nil && (!optional || len(bytes.TrimSpace(body)) > 0) {
		err = DecodeStrict(body, v)
	}
	if err != nil {
		a.Error(w, Invalidf("body", "%v", err))
		return false
	}
	return true
}

// DecodeStrict unmarshals one JSON value into v, refusing unknown fields
// and trailing data.
func DecodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// Respond writes v with status ok, or the error.
func (a *API) Respond(w http.ResponseWriter, ok int, v any, err error) {
	if err != nil {
		a.Error(w, err)
		return
	}
	WriteJSON(w, ok, v)
}

// RespondWith writes v alone on success; on error {"error": …} with v
// under name when haveV: the state an error leaves a resource in (a
// FAILED order, a payment still pending).
func (a *API) RespondWith(w http.ResponseWriter, ok int, name string, v any, haveV bool, err error) {
	if err == nil {
		WriteJSON(w, ok, v)
		return
	}
	body := map[string]any{}
	if haveV {
		body[name] = v
	}
	a.ErrorWith(w, err, body)
}

// ErrorWith answers the error as Error does, with the other fields of
// body beside "error".
func (a *API) ErrorWith(w http.ResponseWriter, err error, body map[string]any) {
	e := a.logged(err)
	body["error"] = ErrorBody(e)
	WriteJSON(w, e.HTTPStatus(), body)
}

// Error answers {"error": {"code": "INSUFFICIENT_CREDITS", "message": "…",
// "metadata": {…}}}. A 401 carries the Bearer challenge (RFC 6750); an
// internal error is logged with its cause, which the caller never sees.
func (a *API) Error(w http.ResponseWriter, err error) {
	e := a.logged(err)
	if e.Kind == KindUnauthenticated {
		challenge := `Bearer realm="` + a.name + `"`
		if e.Metadata["token"] == "invalid" {
			challenge += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	WriteJSON(w, e.HTTPStatus(), map[string]any{"error": ErrorBody(e)})
}

// logged is err as an *Error, logged when internal.
func (a *API) logged(err error) *Error {
	e := AsError(err)
	if e.Kind == KindInternal {
		a.log.Error("internal error", zap.Error(err))
	}
	return e
}

// ErrorBody is the JSON of e under "error".
func ErrorBody(e *Error) map[string]any {
	b := map[string]any{"code": e.Code, "message": e.Message}
	if len(e.Metadata) > 0 {
		b["metadata"] = e.Metadata
	}
	return b
}

// WriteJSON answers v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Healthz answers GET /healthz: {"status": "ok"} while the process serves.
func Healthz(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
