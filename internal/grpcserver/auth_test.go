package grpcserver

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/token"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testKey signs every role's tokens in these tests; testVerifier trusts it.
var testKey, testVerifier = func() (token.SigningKey, *token.Verifier) {
	k, err := token.GenerateKey(token.AlgEdDSA, "test-1", token.Roles)
	if err != nil {
		panic(err)
	}
	doc, err := token.PublicJWKS(k)
	if err != nil {
		panic(err)
	}
	ks, err := token.ParseJWKS(doc)
	if err != nil {
		panic(err)
	}
	v, err := token.NewVerifier(token.VerifierOptions{Keys: ks, Now: func() time.Time { return testNow }})
	if err != nil {
		panic(err)
	}
	return k, v
}()

// grant is what a test token says.
type grant struct {
	role      token.Role
	sub, ws   string
	account   string
	scopes    []string
	issuedAt  time.Time
	ttl       time.Duration
	signingBy token.SigningKey
}

func mint(t testing.TB, g grant) string {
	t.Helper()
	if g.issuedAt.IsZero() {
		g.issuedAt = testNow.Add(-time.Minute)
	}
	if g.ttl == 0 {
		g.ttl = time.Hour
	}
	if g.signingBy.Signer == nil {
		g.signingBy = testKey
	}
	tok, err := token.Mint(g.signingBy, token.New(token.DefaultIssuer, token.DefaultAudience, g.role, g.sub, g.ws, g.account, g.scopes, g.issuedAt, g.ttl))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// roleFor is a role that may hold scope.
func roleFor(scope string) token.Role {
	switch scope {
	case ScopeLedgerWrite:
		return token.RoleService
	default:
		return token.RoleAdmin
	}
}

func withBearer(tok string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok))
}

// requestFor builds the method's request message naming workspace and,
// when the message has one, account.
func requestFor(t *testing.T, fullMethod, workspace, account string) any {
	t.Helper()
	svc, method, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		t.Fatal(err)
	}
	md := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(method))
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
	if err != nil {
		t.Fatal(err)
	}
	m := mt.New()
	m.Set(m.Descriptor().Fields().ByName("workspace"), protoreflect.ValueOfString(workspace))
	if f := m.Descriptor().Fields().ByName("account"); f != nil {
		m.Set(f, protoreflect.ValueOfString(account))
	}
	return m.Interface()
}

var allScopes = token.Scopes

// TestAuthorizeScopeByRPC is the spec §6 matrix, written out independently
// of the policy table: for every RPC, which scope opens it, and whether a
// client (account-bound) token may call it.
func TestAuthorizeScopeByRPC(t *testing.T) {
	t.Parallel()
	want := []struct {
		method string
		scopes []string // any one of them opens the RPC
		client bool
	}{
		{"/creditledger.v1.CreditLedger/Credit", []string{"ledger:write"}, false},
		{"/creditledger.v1.CreditLedger/Debit", []string{"ledger:write"}, false},
		{"/creditledger.v1.CreditLedger/GetBalance", []string{"ledger:read"}, true},
		{"/creditledger.v1.CreditLedger/ListTransactions", []string{"ledger:read"}, true},
		{"/creditledger.v1.CreditLedger/CheckCreditPayment", []string{"ledger:read"}, true},
		{"/creditledger.v1.CreditLedger/ListRequests", []string{"ledger:read"}, true},
		{"/creditledger.v1.CreditLedger/SubmitRequest", []string{"requests:submit"}, true},
		{"/creditledger.v1.CreditLedger/GetRequest", []string{"ledger:read"}, true}, // ownership checked on the answer,
		{"/creditledger.v1.CreditLedger/ListAccounts", []string{"ledger:read"}, false},
		{"/creditledger.v1.CreditLedger/DecideRequest", []string{"requests:decide"}, false},
		{"/creditledger.v1.CreditLedger/CreateHold", []string{"ledger:write"}, false},
		{"/creditledger.v1.CreditLedger/CaptureHold", []string{"ledger:write"}, false},
		{"/creditledger.v1.CreditLedger/VoidHold", []string{"ledger:write"}, false},
		{"/creditledger.v1.CreditLedger/ReverseTransaction", []string{"ledger:write", "requests:decide"}, false}, // a service's refund, an admin's claw-back
		{"/creditledger.v1.CreditLedger/GetHold", []string{"ledger:read"}, true},                                 // ownership checked on the answer
		{"/creditledger.v1.CreditLedger/ListHolds", []string{"ledger:read"}, true},
		{"/creditledger.v1.CreditLedger/GetTransaction", []string{"ledger:read"}, true}, // ownership checked on the answer
		{"/creditledger.v1.CreditLedger/GetStatement", []string{"ledger:read"}, true},
		{"/creditledger.v1.CreditLedger/ExportTransactions", []string{"ledger:read"}, true},
		{"/creditledger.v1.CreditSettings/GetSettings", []string{"ledger:read"}, true},
		{"/creditledger.v1.CreditSettings/ListPackages", []string{"ledger:read"}, true},
		{"/creditledger.v1.CreditSettings/GetPackage", []string{"ledger:read"}, true},
		{"/creditledger.v1.CreditSettings/ListConversionRates", []string{"ledger:read"}, true},
		{"/creditledger.v1.CreditSettings/Quote", []string{"ledger:read"}, true},
		{"/creditledger.v1.CreditSettings/UpdateSettings", []string{"settings:admin"}, false},
		{"/creditledger.v1.CreditSettings/CreatePackage", []string{"settings:admin"}, false},
		{"/creditledger.v1.CreditSettings/UpdatePackage", []string{"settings:admin"}, false},
		{"/creditledger.v1.CreditSettings/ArchivePackage", []string{"settings:admin"}, false},
		{"/creditledger.v1.CreditSettings/SetConversionRate", []string{"settings:admin"}, false},
		{"/creditledger.v1.CreditLedger/ListEvents", []string{"ledger:read"}, true}, // a client: its own account's events
		{"/creditledger.v1.CreditLedger/WatchEvents", []string{"ledger:read"}, true},
	}
	// Every RPC of the API is in the matrix: a new RPC fails this test
	// until someone decides who may call it.
	covered := map[string]bool{}
	for _, w := range want {
		covered[w.method] = true
	}
	for _, sd := range []protoreflect.ServiceDescriptor{
		pb.File_creditledger_v1_ledger_proto.Services().ByName("CreditLedger"),
		pb.File_creditledger_v1_settings_proto.Services().ByName("CreditSettings"),
	} {
		for i := 0; i < sd.Methods().Len(); i++ {
			m := "/" + string(sd.FullName()) + "/" + string(sd.Methods().Get(i).Name())
			if !covered[m] {
				t.Errorf("RPC %s is missing from the authorization matrix", m)
			}
		}
	}

	auth := NewTokenAuth(testVerifier)
	for _, w := range want {
		for _, scope := range allScopes {
			name := fmt.Sprintf("%s/%s", w.method[strings.LastIndex(w.method, "/")+1:], scope)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				req := requestFor(t, w.method, "acme", "alice")
				tok := mint(t, grant{role: roleFor(scope), sub: "svc", ws: "acme", scopes: []string{scope}})
				p, err := auth.Authorize(withBearer(tok), w.method, req)
				if slices.Contains(w.scopes, scope) {
					if err != nil {
						t.Fatalf("agency/service token with %s refused: %v", scope, err)
					}
					if p.Subject != "svc" {
						t.Errorf("principal = %+v", p)
					}
				} else if c := ledger.ErrorOf(err).Code; c != ledger.CodePermissionDenied {
					t.Fatalf("token with %s: code %v, want permission denied (%v)", scope, c, err)
				}
			})
		}
		t.Run(w.method[strings.LastIndex(w.method, "/")+1:]+"/other-workspace", func(t *testing.T) {
			t.Parallel()
			// Right scope, and every other scope too, for workspace acme,
			// asking about workspace globex: NOT_FOUND, never more.
			for _, role := range []token.Role{token.RoleAdmin, token.RoleService} {
				tok := mint(t, grant{role: role, sub: "svc", ws: "acme", scopes: token.RoleScopes(role)})
				_, err := auth.Authorize(withBearer(tok), w.method, requestFor(t, w.method, "globex", "alice"))
				if c := ledger.ErrorOf(err).Code; c != ledger.CodeNotFound {
					t.Fatalf("cross-workspace %s: code %v, want not found (%v)", role, c, err)
				}
			}
			tok := mint(t, grant{role: token.RoleService, sub: "svc", ws: "acme", scopes: []string{ScopeLedgerRead}})
			_, err := auth.Authorize(withBearer(tok), w.method, requestFor(t, w.method, "globex", "alice"))
			if c := ledger.ErrorOf(err).Code; c != ledger.CodeNotFound {
				t.Fatalf("cross-workspace without the scope: code %v, want not found (%v)", c, err)
			}
		})
		t.Run(w.method[strings.LastIndex(w.method, "/")+1:]+"/client-token", func(t *testing.T) {
			t.Parallel()
			// A client's token holds every scope a client may hold: the
			// agency's RPCs are closed to it whatever its scopes.
			tok := mint(t, grant{role: token.RoleClient, sub: "alice", ws: "acme", account: "alice", scopes: token.RoleScopes(token.RoleClient)})
			_, err := auth.Authorize(withBearer(tok), w.method, requestFor(t, w.method, "acme", "alice"))
			switch {
			case w.client && err != nil:
				t.Fatalf("client token on its own account refused: %v", err)
			case !w.client && ledger.ErrorOf(err).Code != ledger.CodePermissionDenied:
				t.Fatalf("client token on an agency RPC: %v, want permission denied", err)
			}
			req := requestFor(t, w.method, "acme", "bob")
			if _, named := req.(interface{ GetAccount() string }); !named || !w.client {
				return
			}
			if _, err := auth.Authorize(withBearer(tok), w.method, req); ledger.ErrorOf(err).Code != ledger.CodeNotFound {
				t.Fatalf("client token asking for another account: %v, want not found", err)
			}
		})
	}
}

func TestAuthorizeCredentials(t *testing.T) {
	t.Parallel()
	auth := NewTokenAuth(testVerifier)
	good := grant{role: token.RoleService, sub: "svc", ws: "acme", scopes: []string{ScopeLedgerRead}}
	valid := mint(t, good)
	stranger, err := token.GenerateKey(token.AlgEdDSA, "test-1", token.Roles) // same kid, unknown key
	if err != nil {
		t.Fatal(err)
	}
	other := good
	other.signingBy = stranger
	expired := good
	expired.issuedAt, expired.ttl = testNow.Add(-2*time.Hour), time.Hour
	h, p, _ := strings.Cut(valid, ".")
	p, sig, _ := strings.Cut(p, ".")
	forgedClaims := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"creditledger","aud":"creditledger","sub":"svc","workspace":"globex","role":"service","scopes":["ledger:read"],"iat":1,"exp":9999999999}`))
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`))

	method := pb.CreditLedger_GetBalance_FullMethodName
	req := &pb.GetBalanceRequest{Workspace: "acme", Account: "alice"}
	tests := []struct {
		name string
		ctx  context.Context
		code ledger.Code
		ok   bool
	}{
		{name: "valid", ctx: withBearer(valid), ok: true},
		{name: "lower-case scheme", ctx: metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "bearer "+valid)), ok: true},
		{name: "no metadata", ctx: context.Background(), code: ledger.CodeUnauthenticated},
		{name: "basic scheme", ctx: metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Basic dXNlcjpwdw==")), code: ledger.CodeUnauthenticated},
		{name: "empty token", ctx: metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer ")), code: ledger.CodeUnauthenticated},
		{name: "unknown key", ctx: withBearer(mint(t, other)), code: ledger.CodeUnauthenticated},
		{name: "expired", ctx: withBearer(mint(t, expired)), code: ledger.CodeUnauthenticated},
		{name: "claims swapped under a valid signature", ctx: withBearer(h + "." + forgedClaims + "." + sig), code: ledger.CodeUnauthenticated},
		{name: "alg none without signature", ctx: withBearer(none + "." + p + "."), code: ledger.CodeUnauthenticated},
		{name: "two parts", ctx: withBearer(h + "." + p), code: ledger.CodeUnauthenticated},
		{name: "four parts", ctx: withBearer(valid + ".x"), code: ledger.CodeUnauthenticated},
		{name: "garbage", ctx: withBearer("not a token"), code: ledger.CodeUnauthenticated},
		{name: "huge", ctx: withBearer(strings.Repeat("a", 5000)), code: ledger.CodeUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := auth.Authorize(tt.ctx, method, req)
			if tt.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if c := ledger.ErrorOf(err).Code; c != tt.code {
				t.Fatalf("code %v, want %v (%v)", c, tt.code, err)
			}
		})
	}
}

func TestAuthorizeMethodsOutsideTheAPI(t *testing.T) {
	t.Parallel()
	auth := NewTokenAuth(testVerifier)
	if _, err := auth.Authorize(context.Background(), "/grpc.health.v1.Health/Check", nil); err != nil {
		t.Errorf("health check needs no token: %v", err)
	}
	tok := mint(t, grant{role: token.RoleAdmin, sub: "svc", ws: "acme", scopes: token.RoleScopes(token.RoleAdmin)})
	_, err := auth.Authorize(withBearer(tok), "/creditledger.v1.CreditLedger/DropEverything", &pb.GetBalanceRequest{Workspace: "acme"})
	if c := ledger.ErrorOf(err).Code; c != ledger.CodePermissionDenied {
		t.Errorf("unknown method: %v, want permission denied", err)
	}
	if _, err := (NoAuth{}).Authorize(context.Background(), pb.CreditLedger_Debit_FullMethodName, &pb.DebitRequest{}); err != nil {
		t.Errorf("NoAuth refused: %v", err)
	}
}
