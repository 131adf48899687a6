package main

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
)

// expiryNoCall checks, against a running ledgerd, that a hold and a grant
// end at their expiry with no call: the server's own sweep releases the
// hold and posts the grant's EXPIRY entry.
func expiryNoCall(t *testing.T, d *ledgerd) {
	t.Helper()
	ctx := testCtx(t)
	if _, err := d.settings.UpdateSettings(ctx, &pb.UpdateSettingsRequest{
		Workspace: "acme", Settings: &pb.Settings{CreditPaymentsEnabled: true},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"credit_payments_enabled"}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ledger.Credit(ctx, &pb.CreditRequest{Workspace: "acme", Account: "exp", Amount: 100, IdempotencyKey: "c1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ledger.Credit(ctx, &pb.CreditRequest{
		Workspace: "acme", Account: "exp", Amount: 30, IdempotencyKey: "c2", ExpireTime: timestamppb.New(time.Now().Add(time.Second)),
	}); err != nil {
		t.Fatal(err)
	}
	h, err := d.ledger.CreateHold(ctx, &pb.CreateHoldRequest{Workspace: "acme", Account: "exp", Amount: 40, Ttl: durationpb.New(time.Second), IdempotencyKey: "h1"})
	if err != nil {
		t.Fatal(err)
	}
	// The hold reserves the soonest-expiring credits: the grant waits for
	// the hold to end, then expires.
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := d.ledger.GetHold(ctx, &pb.GetHoldRequest{Workspace: "acme", HoldId: h.GetHold().GetId()})
		b, berr := d.ledger.GetBalance(ctx, &pb.GetBalanceRequest{Workspace: "acme", Account: "exp"})
		if err == nil && berr == nil && got.GetHold().GetStatus() == pb.HoldStatus_HOLD_STATUS_EXPIRED &&
			b.GetBalance().GetBalance() == 100 && b.GetBalance().GetHeld() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no sweep: hold %v (%v), balance %v (%v)", got, err, b, berr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	tx, err := d.ledger.ListTransactions(ctx, &pb.ListTransactionsRequest{Workspace: "acme", Account: "exp"})
	if err != nil || len(tx.GetTransactions()) != 3 || tx.GetTransactions()[0].GetKind() != pb.TransactionKind_TRANSACTION_KIND_EXPIRY ||
		tx.GetTransactions()[0].GetAmount() != 30 {
		t.Fatalf("history after the sweep: %v, %v", tx, err)
	}
}

func TestExpiryWithNoCallEmbedded(t *testing.T) {
	t.Parallel()
	d := startLedgerd(t, []string{"--data-dir", t.TempDir()}, map[string]string{"LEDGER_AUTH": "none", "LEDGER_EXPIRY_INTERVAL": "100ms"})
	expiryNoCall(t, d)
}

// TestExpiryWithNoCallPostgres: the sweep works through row-level
// security, as the runtime role.
func TestExpiryWithNoCallPostgres(t *testing.T) {
	t.Parallel()
	owner, runtime := postgresURLs(t)
	d := startLedgerd(t, nil, map[string]string{
		"LEDGER_AUTH": "none", "LEDGER_EXPIRY_INTERVAL": "100ms",
		"LEDGER_DATABASE_URL": runtime, "LEDGER_MIGRATE_DATABASE_URL": owner, "LEDGER_MIGRATE_ON_START": "true",
	})
	expiryNoCall(t, d)
}
