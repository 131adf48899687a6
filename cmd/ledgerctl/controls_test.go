package main

import (
	"strings"
	"testing"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledgertest"
)

func TestSettingsPaymentMethodsAndThreshold(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	a := f.Addr
	out := mustCtl(t, a, "settings", "get")
	if !strings.Contains(out, "payment methods: bank_transfer, crypto, stripe, paypal") || !strings.Contains(out, "low-balance threshold: off") {
		t.Errorf("defaults: %q", out)
	}
	out = mustCtl(t, a, "settings", "set", "--payment-methods", "Stripe, crypto", "--low-balance-threshold", "250")
	if !strings.Contains(out, "payment methods: crypto, stripe") || !strings.Contains(out, "low-balance threshold: 250 credits") ||
		!strings.Contains(out, "credit payments disabled") {
		t.Errorf("set methods and threshold: %q", out)
	}
	out = mustCtl(t, a, "settings", "set", "--payment-methods", "none", "--credit-payments", "on")
	if !strings.Contains(out, "payment methods: none") || !strings.Contains(out, "credit payments enabled") ||
		!strings.Contains(out, "low-balance threshold: 250 credits") {
		t.Errorf("offer none: %q", out)
	}
	for _, tt := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"settings", "set"}, "at least one"},
		{[]string{"settings", "set", "--payment-methods", "cash"}, `"cash" is not one of`},
		{[]string{"settings", "set", "--payment-methods", "unspecified"}, "is not one of"},
		{[]string{"settings", "set", "--low-balance-threshold", "-5"}, "--low-balance-threshold"},
		{[]string{"settings", "set", "--require-distinct-approver", "maybe"}, "--require-distinct-approver must be on or off"},
	} {
		if _, errOut, code := ctl(t, a, tt.args...); code != 2 || !strings.Contains(errOut, tt.stderr) {
			t.Errorf("ledgerctl %q: exit %d %q, want 2 with %q", tt.args, code, errOut, tt.stderr)
		}
	}
}

func TestRequestsCancel(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	a := f.Addr
	f.SetEnabled(t, ws, true)
	c := dialLedger(t, a)
	submit := func(key string) string {
		t.Helper()
		r, err := c.SubmitRequest(t.Context(), &pb.SubmitRequestRequest{
			Workspace: ws, Account: "client-1", Amount: 70, PaymentMethod: pb.PaymentMethod_PAYMENT_METHOD_CRYPTO, IdempotencyKey: key,
		})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetRequest().GetId()
	}
	r1, r2 := submit("s1"), submit("s2")
	if out := mustCtl(t, a, "requests", "cancel", r1, "--reason", "paid by card"); !strings.Contains(out, "request "+r1+" cancelled") ||
		!strings.Contains(out, "70 credits no longer pending for client-1") {
		t.Errorf("cancel: %q", out)
	}
	if out := mustCtl(t, a, "requests", "cancel", r1, "--reason", "paid by card"); !strings.Contains(out, "replayed") {
		t.Errorf("cancel again: %q", out)
	}
	if calls := f.Calls("CancelRequest"); len(calls) != 2 || calls[0].IdempotencyKey != "ledgerctl:cancel:"+r1 {
		t.Errorf("CancelRequest calls %+v", calls)
	}
	mustCtl(t, a, "requests", "accept", r2, "--by", "admin@agency")
	if _, errOut, code := ctl(t, a, "requests", "cancel", r2); code != 1 || !strings.Contains(errOut, "REQUEST_ALREADY_DECIDED") {
		t.Errorf("cancel an accepted request: exit %d %q", code, errOut)
	}
	if out := mustCtl(t, a, "requests", "list", "--status", "cancelled"); !strings.Contains(out, r1) || strings.Contains(out, r2) ||
		!strings.Contains(out, "CANCELLED") {
		t.Errorf("cancelled requests:\n%s", out)
	}
	if _, errOut, code := ctl(t, a, "requests", "cancel"); code != 2 || !strings.Contains(errOut, "REQUEST_ID") {
		t.Errorf("no id: exit %d %q", code, errOut)
	}
}
