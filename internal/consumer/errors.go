package consumer

import (
	"database/sql"
	"errors"
	"fmt"
	"net/http"

	"github.com/creditledger/creditledger/internal/ident"
	"github.com/creditledger/creditledger/ledgerclient"
)

// Kind classifies an Error for the HTTP status it is answered with.
type Kind int

// Error kinds.
const (
	KindInternal         Kind = iota // 500
	KindInvalid                      // 400: malformed input
	KindNotFound                     // 404
	KindConflict                     // 409: a key or id reused for something else, or a state that forbids the call
	KindRefused                      // 422: a business rule refused (INSUFFICIENT_CREDITS, …)
	KindUnavailable                  // 503: the ledger did not confirm; the operation stays pending, safe to retry
	KindUnauthenticated              // 401: no valid bearer token
	KindPermissionDenied             // 403: the token's role or scopes do not allow the call
	KindBadGateway                   // 502: a provider the service calls (a payment provider) refused its request
)

// Codes every service answers with; each adds its own.
const (
	CodeInvalidArgument   = "INVALID_ARGUMENT"
	CodeNotFound          = "NOT_FOUND"
	CodeLedgerUnavailable = "LEDGER_UNAVAILABLE"
	CodeUnauthenticated   = "UNAUTHENTICATED"
	CodePermissionDenied  = "PERMISSION_DENIED"
	CodeInternal          = "INTERNAL"
)

// Error is a consumer service's error: a kind (the HTTP status), a stable
// machine code (the ledger's reason when the ledger refused), a message
// safe to show and metadata. The API answers it as
// {"error": {"code", "message", "metadata"}}; the cause is for the log.
type Error struct {
	Kind     Kind
	Code     string
	Message  string
	Metadata map[string]string
	Cause    error
}

// Error implements error.
func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Code + ": " + e.Message + ": " + e.Cause.Error()
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// HTTPStatus is the status code the API answers with.
func (e *Error) HTTPStatus() int {
	switch e.Kind {
	case KindInvalid:
		return http.StatusBadRequest
	case KindNotFound:
		return http.StatusNotFound
	case KindConflict:
		return http.StatusConflict
	case KindRefused:
		return http.StatusUnprocessableEntity
	case KindUnavailable:
		return http.StatusServiceUnavailable
	case KindUnauthenticated:
		return http.StatusUnauthorized
	case KindPermissionDenied:
		return http.StatusForbidden
	case KindBadGateway:
		return http.StatusBadGateway
	default:
		return http.StatusInternalServerError
	}
}

// AsError is err as an *Error; anything else is an internal error.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Internal(err)
}

// Invalidf is malformed input in field: INVALID_ARGUMENT, metadata field.
func Invalidf(field, format string, args ...any) *Error {
	return &Error{
		Kind: KindInvalid, Code: CodeInvalidArgument, Message: field + ": " + fmt.Sprintf(format, args...),
		Metadata: map[string]string{"field": field},
	}
}

// NotFound is a missing resource (what: "order") with its id. A caller
// kept from a resource by Authorize gets the same answer.
func NotFound(what, id string) *Error {
	return &Error{
		Kind: KindNotFound, Code: CodeNotFound, Message: fmt.Sprintf("%s %q not found", what, id),
		Metadata: map[string]string{"resource": what, "id": id},
	}
}

// Internal wraps an unexpected failure: the caller reads "internal
// error", the log the cause.
func Internal(err error) *Error {
	return &Error{Kind: KindInternal, Code: CodeInternal, Message: "internal error", Cause: err}
}

// FromLedger maps a failed ledger call: its refusals keep the ledger's
// reason, message and metadata (IDEMPOTENCY_KEY_REUSED a conflict, a
// missing resource NOT_FOUND, malformed input INVALID_ARGUMENT, a rule
// such as INSUFFICIENT_CREDITS a refusal); whatever leaves the outcome
// unknown is LEDGER_UNAVAILABLE with the message pending, which tells the
// caller what becomes of the operation. Anything not from the ledger
// client is internal.
func FromLedger(err error, pending string) *Error {
	var le *ledgerclient.Error
	if !errors.As(err, &le) {
		return Internal(err)
	}
	e := &Error{Code: le.Reason, Message: le.Message, Metadata: le.Metadata, Cause: err}
	switch {
	case errors.Is(err, ledgerclient.ErrIdempotencyKeyReused):
		e.Kind = KindConflict
	case errors.Is(err, ledgerclient.ErrNotFound):
		e.Kind, e.Code = KindNotFound, CodeNotFound
	case errors.Is(err, ledgerclient.ErrInvalidArgument):
		e.Kind, e.Code = KindInvalid, CodeInvalidArgument
	case ledgerclient.IsRefused(err):
		e.Kind = KindRefused
	default:
		return &Error{Kind: KindUnavailable, Code: CodeLedgerUnavailable, Message: pending, Cause: err}
	}
	return e
}

// FromStore maps a store's failure to find the resource what with id:
// nothing selected (sql.ErrNoRows) is NotFound, another failure internal,
// none nil.
func FromStore(err error, what, id string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return NotFound(what, id)
	default:
		return Internal(err)
	}
}

// CheckIDs checks (field, id) pairs against the ledger's identifier rule
// (ident.Valid): the first that breaks it is INVALID_ARGUMENT on its field.
func CheckIDs(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if !ident.Valid(pairs[i+1]) {
			return Invalidf(pairs[i], "must be %s", ident.Rule)
		}
	}
	return nil
}
