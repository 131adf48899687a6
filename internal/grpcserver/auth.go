package grpcserver

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/token"
)

// Scopes a bearer token can carry (spec §6); see package token.
const (
	ScopeLedgerWrite    = token.ScopeLedgerWrite
	ScopeLedgerRead     = token.ScopeLedgerRead
	ScopeRequestsSubmit = token.ScopeRequestsSubmit
	ScopeRequestsDecide = token.ScopeRequestsDecide
	ScopeSettingsAdmin  = token.ScopeSettingsAdmin
)

// Principal is the authenticated caller.
type Principal struct {
	Subject   string
	Workspace string
	Account   string // non-empty: a client token, limited to this account
	Role      token.Role
	Scopes    []string
	// Unauthenticated marks the development mode's anonymous caller.
	Unauthenticated bool
}

// Authorizer is the security hook: it decides, before the handler runs,
// whether the caller may make this call. Errors are *ledger.Error with
// CodeUnauthenticated (no valid credentials), CodePermissionDenied (valid
// credentials, missing scope) or CodeNotFound (another workspace's or
// client's data: its existence is never revealed).
type Authorizer interface {
	Authorize(ctx context.Context, fullMethod string, req any) (Principal, error)
}

// rule says what a method needs.
type rule struct {
	// scopes: the token needs one of them.
	scopes []string
	// client: a client (account-bound) token may call the method. Methods
	// that name an account then require it to be the token's account.
	client bool
}

// policy is the per-RPC authorization table of spec §6. A method missing
// from it is refused: new RPCs are closed until someone decides who may
// call them.
var policy = map[string]rule{
	pb.CreditLedger_Credit_FullMethodName:             {one(ScopeLedgerWrite), false},
	pb.CreditLedger_Debit_FullMethodName:              {one(ScopeLedgerWrite), false},
	pb.CreditLedger_GetBalance_FullMethodName:         {one(ScopeLedgerRead), true},
	pb.CreditLedger_ListTransactions_FullMethodName:   {one(ScopeLedgerRead), true},
	pb.CreditLedger_CheckCreditPayment_FullMethodName: {one(ScopeLedgerRead), true},
	pb.CreditLedger_ListRequests_FullMethodName:       {one(ScopeLedgerRead), true},
	pb.CreditLedger_SubmitRequest_FullMethodName:      {one(ScopeRequestsSubmit), true},
	pb.CreditLedger_GetRequest_FullMethodName:         {one(ScopeLedgerRead), true}, // a client's own requests only: checked on the answer
	pb.CreditLedger_ListAccounts_FullMethodName:       {one(ScopeLedgerRead), false},
	pb.CreditLedger_DecideRequest_FullMethodName:      {one(ScopeRequestsDecide), false},
	// A client withdraws its own requests (the handler passes its account
	// to the domain, which finds another's absent); the agency's admins
	// and services may withdraw any.
	pb.CreditLedger_CancelRequest_FullMethodName: {[]string{ScopeRequestsSubmit, ScopeRequestsDecide}, true},

	// Holds are the internal services' (checkout, invoicing).
	pb.CreditLedger_CreateHold_FullMethodName:  {one(ScopeLedgerWrite), false},
	pb.CreditLedger_CaptureHold_FullMethodName: {one(ScopeLedgerWrite), false},
	pb.CreditLedger_VoidHold_FullMethodName:    {one(ScopeLedgerWrite), false},
	// A reversal is a service's refund or the agency admins' claw-back.
	pb.CreditLedger_ReverseTransaction_FullMethodName: {[]string{ScopeLedgerWrite, ScopeRequestsDecide}, false},
	pb.CreditLedger_GetHold_FullMethodName:            {one(ScopeLedgerRead), true}, // a client's own holds only: checked on the answer
	pb.CreditLedger_ListHolds_FullMethodName:          {one(ScopeLedgerRead), true},
	pb.CreditLedger_GetTransaction_FullMethodName:     {one(ScopeLedgerRead), true}, // a client's own entries only: checked on the answer
	pb.CreditLedger_GetStatement_FullMethodName:       {one(ScopeLedgerRead), true},
	pb.CreditLedger_ExportTransactions_FullMethodName: {one(ScopeLedgerRead), true},
	// A client token sees its own account's events only.
	pb.CreditLedger_ListEvents_FullMethodName:  {one(ScopeLedgerRead), true},
	pb.CreditLedger_WatchEvents_FullMethodName: {one(ScopeLedgerRead), true},

	// The workspace's catalog is what a client's portal shows.
	pb.CreditSettings_GetSettings_FullMethodName:         {one(ScopeLedgerRead), true},
	pb.CreditSettings_ListPackages_FullMethodName:        {one(ScopeLedgerRead), true},
	pb.CreditSettings_GetPackage_FullMethodName:          {one(ScopeLedgerRead), true},
	pb.CreditSettings_ListConversionRates_FullMethodName: {one(ScopeLedgerRead), true},
	pb.CreditSettings_Quote_FullMethodName:               {one(ScopeLedgerRead), true},

	pb.CreditSettings_UpdateSettings_FullMethodName:    {one(ScopeSettingsAdmin), false},
	pb.CreditSettings_CreatePackage_FullMethodName:     {one(ScopeSettingsAdmin), false},
	pb.CreditSettings_UpdatePackage_FullMethodName:     {one(ScopeSettingsAdmin), false},
	pb.CreditSettings_ArchivePackage_FullMethodName:    {one(ScopeSettingsAdmin), false},
	pb.CreditSettings_SetConversionRate_FullMethodName: {one(ScopeSettingsAdmin), false},

	// Webhook endpoints are the agency's: their secrets sign what the
	// agency's systems trust.
	pb.CreditWebhooks_CreateWebhookEndpoint_FullMethodName: {one(ScopeSettingsAdmin), false},
	pb.CreditWebhooks_ListWebhookEndpoints_FullMethodName:  {one(ScopeSettingsAdmin), false},
	pb.CreditWebhooks_UpdateWebhookEndpoint_FullMethodName: {one(ScopeSettingsAdmin), false},
	pb.CreditWebhooks_DeleteWebhookEndpoint_FullMethodName: {one(ScopeSettingsAdmin), false},
	pb.CreditWebhooks_ListWebhookDeliveries_FullMethodName: {one(ScopeSettingsAdmin), false},
}

func one(scope string) []string { return []string{scope} }

// publicMethod reports whether a method needs no credentials: health
// checks (load balancers, orchestrators) and, when enabled, reflection.
func publicMethod(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(fullMethod, "/grpc.reflection.")
}

// NoAuth is the explicit development mode (LEDGER_AUTH=none): every call
// is allowed. The process announces it loudly at start and on /readyz.
type NoAuth struct{}

// Authorize allows everything.
func (NoAuth) Authorize(context.Context, string, any) (Principal, error) {
	return Principal{Subject: "anonymous (auth disabled)", Unauthenticated: true}, nil
}

// TokenAuth checks signed bearer tokens (JWTs, see package token).
type TokenAuth struct {
	verifier *token.Verifier
}

// NewTokenAuth returns a TokenAuth over v.
func NewTokenAuth(v *token.Verifier) *TokenAuth { return &TokenAuth{verifier: v} }

func unauthenticated(msg string) error {
	return &ledger.Error{Code: ledger.CodeUnauthenticated, Reason: ledger.ReasonUnauthenticated, Message: msg}
}

func permissionDenied(msg string, md map[string]string) error {
	return &ledger.Error{Code: ledger.CodePermissionDenied, Reason: ledger.ReasonPermissionDenied, Message: msg, Metadata: md}
}

// Authorize implements Authorizer. The order of the checks matters: the
// workspace (and a client's account) is checked before the scope, so a
// token of workspace A learns nothing about workspace B, not even which
// scope a call there would need.
func (a *TokenAuth) Authorize(ctx context.Context, fullMethod string, req any) (Principal, error) {
	if publicMethod(fullMethod) {
		return Principal{}, nil
	}
	r, known := policy[fullMethod]
	if !known {
		return Principal{}, permissionDenied("this method is not open to callers", nil)
	}
	raw, err := bearerToken(ctx)
	if err != nil {
		return Principal{}, err
	}
	c, err := a.verifier.Verify(raw)
	if err != nil {
		callInfoFrom(ctx).authError = err.Error()
		return Principal{}, unauthenticated("invalid or expired bearer token")
	}
	p := Principal{Subject: c.Subject, Workspace: c.Workspace, Account: c.Account, Role: c.Role, Scopes: c.Scopes}
	ws := ""
	if w, ok := req.(interface{ GetWorkspace() string }); ok {
		ws = w.GetWorkspace()
	}
	if ws != c.Workspace {
		return p, ledger.NotFoundError("workspace", ws)
	}
	if c.Role == token.RoleClient {
		if !r.client {
			return p, permissionDenied("client tokens cannot make this call", nil)
		}
		if acct, ok := req.(interface{ GetAccount() string }); ok {
			switch got := acct.GetAccount(); {
			case got == "" && fullMethod == pb.CreditLedger_ListRequests_FullMethodName:
				return p, permissionDenied("client tokens must filter requests by their own account", nil)
			case got == "" && (fullMethod == pb.CreditLedger_ListEvents_FullMethodName || fullMethod == pb.CreditLedger_WatchEvents_FullMethodName):
				return p, permissionDenied("client tokens must filter events by their own account", nil)
			case got != c.Account:
				return p, ledger.NotFoundError("account", got)
			}
		}
	}
	if !slices.ContainsFunc(r.scopes, func(s string) bool { return slices.Contains(c.Scopes, s) }) {
		return p, permissionDenied("the token lacks the scope this call needs", map[string]string{"required_scope": strings.Join(r.scopes, " or ")})
	}
	return p, nil
}

// bearerToken reads "authorization: Bearer <token>" from the call.
func bearerToken(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return "", unauthenticated("missing bearer token")
	}
	scheme, tok, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || tok == "" {
		return "", unauthenticated("the authorization header must be \"Bearer <token>\"")
	}
	return strings.TrimSpace(tok), nil
}

// authInterceptor runs the Authorizer before the handler and records the
// caller's subject for the request's log line.
func authInterceptor(a Authorizer) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := authorize(ctx, a, info.FullMethod, req)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// authorize is authInterceptor's work, for unary calls and streams: it
// returns ctx with the caller's Principal.
func authorize(ctx context.Context, a Authorizer, method string, req any) (context.Context, error) {
	p, err := a.Authorize(ctx, method, req)
	if p.Subject != "" {
		callInfoFrom(ctx).subject = p.Subject
	}
	if err != nil {
		return ctx, err
	}
	return context.WithValue(ctx, principalKey{}, p), nil
}

type principalKey struct{}

// actor is who makes the call, for the audit fields (submitted_by,
// decided_by): the authenticated subject, never the request body. Only in
// development mode, where nobody is authenticated, may the body name
// someone.
func actor(ctx context.Context, fromBody string) string {
	p, _ := ctx.Value(principalKey{}).(Principal)
	if p.Unauthenticated && fromBody != "" {
		return fromBody
	}
	return p.Subject
}

// clientAccount returns the account a client token is bound to ("" for
// every other caller, and in development mode).
func clientAccount(ctx context.Context) string {
	p, _ := ctx.Value(principalKey{}).(Principal)
	return p.Account
}
