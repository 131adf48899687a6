package checkout

import (
	"slices"
	"testing"

	"google.golang.org/grpc/codes"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledgertest"
	"github.com/creditledger/creditledger/internal/token"
)

// The workspace's payment methods, as the ledger's settings say, and the
// cancellation of a manual purchase.

func TestPaymentMethodsAreTheLedgersSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var got struct {
		Methods []PaymentMethod `json:"payment_methods"`
	}
	path := "/v1/workspaces/" + ws + "/payment-methods"
	if code := e.do("GET", path, nil, &got); code != 200 ||
		!slices.Equal(got.Methods, []PaymentMethod{MethodBankTransfer, MethodCrypto, MethodStripe, MethodPayPal}) {
		t.Fatalf("never chosen: HTTP %d %v, want every method", code, got.Methods)
	}
	e.ledger.SetPaymentMethods(e.t, ws, pb.PaymentMethod_PAYMENT_METHOD_PAYPAL, pb.PaymentMethod_PAYMENT_METHOD_CRYPTO)
	if code := e.do("GET", path, nil, &got); code != 200 || !slices.Equal(got.Methods, []PaymentMethod{MethodCrypto, MethodPayPal}) {
		t.Fatalf("chosen: HTTP %d %v", code, got.Methods)
	}
	e.ledger.SetPaymentMethods(e.t, ws)
	if code := e.do("GET", path, nil, &got); code != 200 || got.Methods == nil || len(got.Methods) != 0 {
		t.Fatalf("none: HTTP %d %v, want []", code, got.Methods)
	}
	e.ledger.InjectFault("GetSettings", ledgertest.Fault{Code: codes.Unavailable}, ledgertest.Fault{Code: codes.Unavailable},
		ledgertest.Fault{Code: codes.Unavailable})
	var body apiError
	if code := e.do("GET", path, nil, &body); code != 503 || body.Error.Code != CodeLedgerUnavailable {
		t.Fatalf("ledger down: HTTP %d %+v", code, body.Error)
	}
}

// TestPurchaseRefusedForAMethodNotOffered: a method the workspace does not
// offer, card checkout included, is refused with 422
// PAYMENT_METHOD_NOT_OFFERED before anything is recorded or sent.
func TestPurchaseRefusedForAMethodNotOffered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, unsignedWebhooks)
	e.agency()
	createPackage(t, e, "pro", 500)
	e.ledger.SetPaymentMethods(e.t, ws, pb.PaymentMethod_PAYMENT_METHOD_CRYPTO)
	for _, m := range []PaymentMethod{MethodStripe, MethodPayPal, MethodBankTransfer} {
		t.Run(string(m), func(t *testing.T) {
			var body apiError
			code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-1/credit-purchases",
				PurchaseInput{PackageID: "pro", Method: m}, &body, "Authorization", "Bearer "+mintToken(t, token.RoleClient, ws, "client-1"))
			if code != 422 || body.Error.Code != "PAYMENT_METHOD_NOT_OFFERED" || body.Error.Metadata["payment_method"] != string(m) ||
				body.Purchase != nil {
				t.Fatalf("HTTP %d %+v purchase %+v", code, body.Error, body.Purchase)
			}
		})
	}
	if n := len(e.ledger.Calls("SubmitRequest")); n != 0 {
		t.Errorf("%d credit requests submitted for a method not offered", n)
	}
	var p Purchase
	if code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-1/credit-purchases",
		PurchaseInput{PackageID: "pro", Method: MethodCrypto}, &p); code != 201 || p.Status != PurchasePendingApproval {
		t.Fatalf("crypto, offered: HTTP %d %+v", code, p)
	}
	// A payment the provider confirmed is credited whatever the settings say:
	// it must never be lost.
	var pay Payment
	if code := e.do("POST", "/webhooks/payments", PaymentConfirmation{
		Provider: "stripe", PaymentID: "pi_offline", Workspace: ws, Account: "client-1", PackageID: "pro",
	}, &pay); code != 200 || pay.Status != PaymentCredited {
		t.Fatalf("a confirmed payment for a method not offered: HTTP %d %+v", code, pay)
	}
}

// TestLedgerRefusesAMethodWithdrawnMeanwhile: the checkout read the
// settings, the agency withdrew the method before the request reached the
// ledger: the ledger refuses, the purchase fails with the reason.
func TestLedgerRefusesAMethodWithdrawnMeanwhile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	createPackage(t, e, "pro", 500)
	e.ledger.InjectFault("SubmitRequest", ledgertest.Fault{Code: codes.FailedPrecondition, Reason: "PAYMENT_METHOD_NOT_OFFERED"})
	var body apiError
	if code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-1/credit-purchases",
		PurchaseInput{PackageID: "pro", Method: MethodBankTransfer}, &body); code != 422 ||
		body.Error.Code != "PAYMENT_METHOD_NOT_OFFERED" || body.Purchase == nil || body.Purchase.Status != PurchaseFailed {
		t.Fatalf("HTTP %d %+v purchase %+v", code, body.Error, body.Purchase)
	}
}

func (e *env) manualPurchase(account string) Purchase {
	e.t.Helper()
	var p Purchase
	if code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/"+account+"/credit-purchases",
		PurchaseInput{PackageID: "pro", Method: MethodBankTransfer, PaymentReference: "SEPA-1"}, &p); code != 201 || p.Status != PurchasePendingApproval {
		e.t.Fatalf("start purchase: HTTP %d %+v", code, p)
	}
	return p
}

func TestCancelManualPurchase(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	createPackage(t, e, "pro", 500)
	client := "Bearer " + mintToken(t, token.RoleClient, ws, "client-1")
	p := e.manualPurchase("client-1")
	cancel := "/v1/workspaces/" + ws + "/credit-purchases/" + p.ID + ":cancel"

	var body apiError
	if code := e.do("POST", cancel, nil, &body, "Authorization", "Bearer "+mintToken(t, token.RoleClient, ws, "client-2")); code != 404 {
		t.Fatalf("another client: HTTP %d %+v", code, body.Error)
	}
	var got Purchase
	if code := e.do("POST", cancel, nil, &got, "Authorization", client); code != 200 || got.Status != PurchaseCancelled ||
		got.FailureReason != "cancelled by the client" {
		t.Fatalf("cancel: HTTP %d %+v", code, got)
	}
	calls := e.ledger.Calls("CancelRequest")
	if len(calls) != 1 || calls[0].IdempotencyKey != "checkout-purchase:"+p.ID+":cancel" ||
		calls[0].Request.(*pb.CancelRequestRequest).GetRequestId() != p.RequestID {
		t.Fatalf("CancelRequest calls %+v", calls)
	}
	r, err := e.client.GetRequest(t.Context(), &pb.GetRequestRequest{Workspace: ws, RequestId: p.RequestID})
	if err != nil || r.GetRequest().GetStatus() != pb.RequestStatus_REQUEST_STATUS_CANCELLED {
		t.Fatalf("ledger request %v %v", r, err)
	}
	// Again: the same answer, no second call.
	if code := e.do("POST", cancel, nil, &got, "Authorization", client); code != 200 || got.Status != PurchaseCancelled {
		t.Fatalf("cancel again: HTTP %d %+v", code, got)
	}
	if n := len(e.ledger.Calls("CancelRequest")); n != 1 {
		t.Errorf("%d CancelRequest calls, want 1", n)
	}

	// Decided by the agency first: 409 with the purchase as decided.
	p2 := e.manualPurchase("client-1")
	if _, err := e.client.DecideRequest(t.Context(), &pb.DecideRequestRequest{
		Workspace: ws, RequestId: p2.RequestID, Decision: pb.Decision_DECISION_ACCEPT, DecidedBy: "admin", IdempotencyKey: "d1",
	}); err != nil {
		t.Fatal(err)
	}
	body = apiError{}
	if code := e.do("POST", "/v1/workspaces/"+ws+"/credit-purchases/"+p2.ID+":cancel", nil, &body, "Authorization", client); code != 409 ||
		body.Error.Code != CodePurchaseNotPending || body.Purchase == nil || body.Purchase.Status != PurchaseCredited {
		t.Fatalf("cancel after the agency accepted: HTTP %d %+v %+v", code, body.Error, body.Purchase)
	}

	// Cancelled on the ledger directly (the portal's REST call): the
	// purchase follows when it is read.
	p3 := e.manualPurchase("client-1")
	if _, err := e.client.CancelRequest(t.Context(), &pb.CancelRequestRequest{Workspace: ws, RequestId: p3.RequestID, IdempotencyKey: "portal-1"}); err != nil {
		t.Fatal(err)
	}
	if code := e.do("GET", "/v1/workspaces/"+ws+"/credit-purchases/"+p3.ID, nil, &got); code != 200 || got.Status != PurchaseCancelled {
		t.Fatalf("read after a cancel on the ledger: HTTP %d %+v", code, got)
	}

	// The ledger cancelled, the answer was lost: 503, and the purchase is
	// CANCELLED once read or reconciled.
	p4 := e.manualPurchase("client-1")
	e.ledger.InjectFault("CancelRequest", ledgertest.Fault{After: true, Code: codes.Unavailable},
		ledgertest.Fault{Code: codes.Unavailable}, ledgertest.Fault{Code: codes.Unavailable})
	body = apiError{}
	if code := e.do("POST", "/v1/workspaces/"+ws+"/credit-purchases/"+p4.ID+":cancel", nil, &body, "Authorization", client); code != 503 ||
		body.Purchase == nil || body.Purchase.Status != PurchasePendingApproval {
		t.Fatalf("ledger down: HTTP %d %+v %+v", code, body.Error, body.Purchase)
	}
	if _, err := e.app.Reconcile(t.Context()); err != nil {
		t.Fatal(err)
	}
	if p, err := e.app.GetPurchase(t.Context(), ws, p4.ID); err != nil || p.Status != PurchaseCancelled {
		t.Fatalf("after the reconciliation: %+v %v", p, err)
	}
	if bal, _ := e.ledger.Balance(e.t, ws, "client-1"); bal != 500 {
		t.Errorf("balance %d, want only the accepted purchase's 500", bal)
	}
}
