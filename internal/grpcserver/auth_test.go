package grpcserver

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledger"
)

var (
	testSecret = []byte("0123456789abcdef0123456789abcdef")
	testNow    = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

func mint(t testing.TB, c Claims) string {
	t.Helper()
	if c.ExpiresAt == 0 {
		c.ExpiresAt = testNow.Add(time.Hour).Unix()
	}
	tok, err := MintToken(testSecret, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
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

var allScopes = []string{ScopeLedgerWrite, ScopeLedgerRead, ScopeRequestsSubmit, ScopeRequestsDecide, ScopeSettingsAdmin}

// TestAuthorizeScopeByRPC is the spec §6 matrix, written out independently
// of the policy table: for every RPC, which scope opens it, and whether a
// client (account-bound) token may call it.
func TestAuthorizeScopeByRPC(t *testing.T) {
	t.Parallel()
	want := []struct {
		method string
		scope  string
		client bool
	}{
		{"/creditledger.v1.CreditLedger/Credit", "ledger:write", false},
		{"/creditledger.v1.CreditLedger/Debit", "ledger:write", false},
		{"/creditledger.v1.CreditLedger/GetBalance", "ledger:read", true},
		{"/creditledger.v1.CreditLedger/ListTransactions", "ledger:read", true},
		{"/creditledger.v1.CreditLedger/CheckCreditPayment", "ledger:read", true},
		{"/creditledger.v1.CreditLedger/ListRequests", "ledger:read", true},
		{"/creditledger.v1.CreditLedger/SubmitRequest", "requests:submit", true},
		{"/creditledger.v1.CreditLedger/GetRequest", "ledger:read", true}, // ownership checked on the answer,
		{"/creditledger.v1.CreditLedger/ListAccounts", "ledger:read", false},
		{"/creditledger.v1.CreditLedger/DecideRequest", "requests:decide", false},
		{"/creditledger.v1.CreditSettings/GetSettings", "ledger:read", true},
		{"/creditledger.v1.CreditSettings/ListPackages", "ledger:read", true},
		{"/creditledger.v1.CreditSettings/GetPackage", "ledger:read", true},
		{"/creditledger.v1.CreditSettings/ListConversionRates", "ledger:read", true},
		{"/creditledger.v1.CreditSettings/Quote", "ledger:read", true},
		{"/creditledger.v1.CreditSettings/UpdateSettings", "settings:admin", false},
		{"/creditledger.v1.CreditSettings/CreatePackage", "settings:admin", false},
		{"/creditledger.v1.CreditSettings/UpdatePackage", "settings:admin", false},
		{"/creditledger.v1.CreditSettings/ArchivePackage", "settings:admin", false},
		{"/creditledger.v1.CreditSettings/SetConversionRate", "settings:admin", false},
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

	auth, err := NewTokenAuth(testSecret, func() time.Time { return testNow })
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		for _, scope := range allScopes {
			name := fmt.Sprintf("%s/%s", w.method[strings.LastIndex(w.method, "/")+1:], scope)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				req := requestFor(t, w.method, "acme", "alice")
				tok := mint(t, Claims{Subject: "svc", Workspace: "acme", Scopes: []string{scope}})
				p, err := auth.Authorize(withBearer(tok), w.method, req)
				if scope == w.scope {
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
			tok := mint(t, Claims{Subject: "svc", Workspace: "acme", Scopes: allScopes})
			_, err := auth.Authorize(withBearer(tok), w.method, requestFor(t, w.method, "globex", "alice"))
			if c := ledger.ErrorOf(err).Code; c != ledger.CodeNotFound {
				t.Fatalf("cross-workspace: code %v, want not found (%v)", c, err)
			}
			tok = mint(t, Claims{Subject: "svc", Workspace: "acme", Scopes: nil})
			_, err = auth.Authorize(withBearer(tok), w.method, requestFor(t, w.method, "globex", "alice"))
			if c := ledger.ErrorOf(err).Code; c != ledger.CodeNotFound {
				t.Fatalf("cross-workspace without scope: code %v, want not found (%v)", c, err)
			}
		})
		t.Run(w.method[strings.LastIndex(w.method, "/")+1:]+"/client-token", func(t *testing.T) {
			t.Parallel()
			tok := mint(t, Claims{Subject: "alice", Workspace: "acme", Account: "alice", Scopes: []string{w.scope}})
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
	auth, err := NewTokenAuth(testSecret, func() time.Time { return testNow })
	if err != nil {
		t.Fatal(err)
	}
	good := Claims{Subject: "svc", Workspace: "acme", Scopes: []string{ScopeLedgerRead}, ExpiresAt: testNow.Add(time.Minute).Unix()}
	valid := mint(t, good)
	other, err := MintToken([]byte("another-secret-another-secret-32"), good)
	if err != nil {
		t.Fatal(err)
	}
	expired := good
	expired.ExpiresAt = testNow.Unix()
	h, p, _ := strings.Cut(valid, ".")
	p, sig, _ := strings.Cut(p, ".")
	forgedClaims := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"svc","workspace":"globex","scopes":["ledger:read"],"exp":9999999999}`))
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
		{name: "other secret", ctx: withBearer(other), code: ledger.CodeUnauthenticated},
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
	auth, err := NewTokenAuth(testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Authorize(context.Background(), "/grpc.health.v1.Health/Check", nil); err != nil {
		t.Errorf("health check needs no token: %v", err)
	}
	tok := mint(t, Claims{Subject: "svc", Workspace: "acme", Scopes: allScopes, ExpiresAt: time.Now().Add(time.Hour).Unix()})
	_, err = auth.Authorize(withBearer(tok), "/creditledger.v1.CreditLedger/DropEverything", &pb.GetBalanceRequest{Workspace: "acme"})
	if c := ledger.ErrorOf(err).Code; c != ledger.CodePermissionDenied {
		t.Errorf("unknown method: %v, want permission denied", err)
	}
	if _, err := (NoAuth{}).Authorize(context.Background(), pb.CreditLedger_Debit_FullMethodName, &pb.DebitRequest{}); err != nil {
		t.Errorf("NoAuth refused: %v", err)
	}
}

func TestTokenRoundTrip(t *testing.T) {
	t.Parallel()
	c := Claims{Subject: "checkout", Workspace: "acme", Account: "alice", Scopes: []string{ScopeLedgerWrite}, ExpiresAt: testNow.Add(time.Hour).Unix(), IssuedAt: testNow.Unix()}
	tok, err := MintToken(testSecret, c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyToken(testSecret, tok, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != c.Subject || got.Workspace != c.Workspace || got.Account != c.Account || got.ExpiresAt != c.ExpiresAt || len(got.Scopes) != 1 {
		t.Fatalf("claims = %+v, want %+v", got, c)
	}
	if _, err := MintToken([]byte("short"), c); err == nil {
		t.Error("short secret accepted")
	}
	if _, err := MintToken(testSecret, Claims{Subject: "x"}); err == nil {
		t.Error("token without workspace and exp minted")
	}
	if _, err := NewTokenAuth([]byte("short"), nil); err == nil {
		t.Error("short secret accepted by NewTokenAuth")
	}
}

func FuzzVerifyToken(f *testing.F) {
	f.Add(mint(f, Claims{Subject: "s", Workspace: "w", Scopes: []string{"ledger:read"}}))
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := VerifyToken(testSecret, tok, testNow)
		if err == nil && (c.Subject == "" || c.Workspace == "") {
			t.Fatalf("accepted token without subject or workspace: %q", tok)
		}
	})
}
