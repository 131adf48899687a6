package main

import (
	"context"
	"encoding/csv"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
)

// stub answers the RPCs of SPEC §9 with canned replies and records each
// request, so that a test sees what a command sent and what it printed.
type stub struct {
	pb.UnimplementedCreditLedgerServer
	pb.UnimplementedCreditSettingsServer

	mu   sync.Mutex
	reqs []proto.Message
}

func (s *stub) record(m proto.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, proto.Clone(m))
}

func (s *stub) last() proto.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reqs[len(s.reqs)-1]
}

var (
	t0   = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	hold = &pb.Hold{
		Id: "h1", Workspace: ws, Account: "client-1", Amount: 30, Kind: pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE,
		Reference: "order:1", Status: pb.HoldStatus_HOLD_STATUS_ACTIVE, ExpireTime: timestamppb.New(t0.Add(15 * time.Minute)),
		CreateTime: timestamppb.New(t0),
	}
	captureTx = &pb.Transaction{
		Id: "t2", Workspace: ws, Account: "client-1", Type: pb.TransactionType_TRANSACTION_TYPE_OUT,
		Kind: pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE, Amount: 20, BalanceAfter: 80, AccountVersion: 2, HoldId: "h1",
	}
)

func (s *stub) CreateHold(_ context.Context, r *pb.CreateHoldRequest) (*pb.CreateHoldResponse, error) {
	s.record(r)
	return &pb.CreateHoldResponse{Hold: hold, Available: 70}, nil
}

func (s *stub) CaptureHold(_ context.Context, r *pb.CaptureHoldRequest) (*pb.CaptureHoldResponse, error) {
	s.record(r)
	h := proto.Clone(hold).(*pb.Hold)
	h.Status, h.CapturedAmount, h.TransactionId = pb.HoldStatus_HOLD_STATUS_CAPTURED, 20, "t2"
	return &pb.CaptureHoldResponse{Hold: h, Transaction: captureTx}, nil
}

func (s *stub) VoidHold(_ context.Context, r *pb.VoidHoldRequest) (*pb.VoidHoldResponse, error) {
	s.record(r)
	h := proto.Clone(hold).(*pb.Hold)
	h.Status = pb.HoldStatus_HOLD_STATUS_VOIDED
	return &pb.VoidHoldResponse{Hold: h, Replayed: true}, nil
}

func (s *stub) GetHold(_ context.Context, r *pb.GetHoldRequest) (*pb.GetHoldResponse, error) {
	s.record(r)
	return &pb.GetHoldResponse{Hold: hold}, nil
}

func (s *stub) ListHolds(_ context.Context, r *pb.ListHoldsRequest) (*pb.ListHoldsResponse, error) {
	s.record(r)
	if r.GetPageToken() == "" {
		return &pb.ListHoldsResponse{Holds: []*pb.Hold{hold}, NextPageToken: "p2"}, nil
	}
	h := proto.Clone(hold).(*pb.Hold)
	h.Id, h.Status = "h0", pb.HoldStatus_HOLD_STATUS_EXPIRED
	return &pb.ListHoldsResponse{Holds: []*pb.Hold{h}}, nil
}

func (s *stub) ReverseTransaction(_ context.Context, r *pb.ReverseTransactionRequest) (*pb.ReverseTransactionResponse, error) {
	s.record(r)
	return &pb.ReverseTransactionResponse{
		Transaction: &pb.Transaction{
			Id: "t3", Account: "client-1", Type: pb.TransactionType_TRANSACTION_TYPE_IN, Kind: pb.TransactionKind_TRANSACTION_KIND_REVERSAL,
			Amount: 5, BalanceAfter: 85, AccountVersion: 3, ReversesTransactionId: "t2",
		},
		Original: &pb.Transaction{Id: "t2", Amount: 20, ReversedAmount: 5},
		Balance:  85, Version: 3,
	}, nil
}

func (s *stub) GetTransaction(_ context.Context, r *pb.GetTransactionRequest) (*pb.GetTransactionResponse, error) {
	s.record(r)
	t := proto.Clone(captureTx).(*pb.Transaction)
	t.ReversedAmount = 5
	return &pb.GetTransactionResponse{Transaction: t}, nil
}

func (s *stub) GetStatement(_ context.Context, r *pb.GetStatementRequest) (*pb.GetStatementResponse, error) {
	s.record(r)
	return &pb.GetStatementResponse{Statement: &pb.Statement{
		Workspace: ws, Account: "client-1", StartTime: r.GetStartTime(), EndTime: r.GetEndTime(),
		OpeningBalance: 10, ClosingBalance: 85, TotalIn: 105, TotalOut: 30, TransactionCount: 4,
		Lines: []*pb.StatementLine{
			{Type: pb.TransactionType_TRANSACTION_TYPE_IN, Kind: pb.TransactionKind_TRANSACTION_KIND_PURCHASE, Amount: 100, Count: 1},
			{Type: pb.TransactionType_TRANSACTION_TYPE_IN, Kind: pb.TransactionKind_TRANSACTION_KIND_REVERSAL, Amount: 5, Count: 1},
			{Type: pb.TransactionType_TRANSACTION_TYPE_OUT, Kind: pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE, Amount: 20, Count: 1},
			{Type: pb.TransactionType_TRANSACTION_TYPE_OUT, Kind: pb.TransactionKind_TRANSACTION_KIND_EXPIRY, Amount: 10, Count: 1},
		},
	}}, nil
}

const stubCSV = "date,type,kind,reference,amount,balance_after,id,version,package_id,request_id,reverses_transaction_id,hold_id\n" +
	"2026-03-01T12:00:00Z,IN,PURCHASE,'=1+1,100,100,t1,1,,,,\n"

func (s *stub) ExportTransactions(r *pb.ExportTransactionsRequest, st grpc.ServerStreamingServer[httpbody.HttpBody]) error {
	s.record(r)
	half := len(stubCSV) / 2
	if err := st.Send(&httpbody.HttpBody{ContentType: "text/csv; charset=utf-8", Data: []byte(stubCSV[:half])}); err != nil {
		return err
	}
	return st.Send(&httpbody.HttpBody{Data: []byte(stubCSV[half:])})
}

func (s *stub) Credit(_ context.Context, r *pb.CreditRequest) (*pb.CreditResponse, error) {
	s.record(r)
	return &pb.CreditResponse{Transaction: &pb.Transaction{
		Id: "t1", Account: r.GetAccount(), Type: pb.TransactionType_TRANSACTION_TYPE_IN, Kind: pb.TransactionKind_TRANSACTION_KIND_PURCHASE,
		Amount: r.GetAmount(), BalanceAfter: r.GetAmount(), AccountVersion: 1, ExpireTime: r.GetExpireTime(),
	}}, nil
}

func (s *stub) CreatePackage(_ context.Context, r *pb.CreatePackageRequest) (*pb.CreatePackageResponse, error) {
	s.record(r)
	p := proto.Clone(r.GetCreditPackage()).(*pb.CreditPackage)
	p.Id = r.GetPackageId()
	return &pb.CreatePackageResponse{CreditPackage: p}, nil
}

func (s *stub) UpdatePackage(_ context.Context, r *pb.UpdatePackageRequest) (*pb.UpdatePackageResponse, error) {
	s.record(r)
	return &pb.UpdatePackageResponse{CreditPackage: &pb.CreditPackage{
		Id: r.GetPackageId(), DisplayName: "Starter", Credits: 100, Validity: r.GetCreditPackage().GetValidity(),
	}}, nil
}

func startStub(t *testing.T) (*stub, string) {
	t.Helper()
	s := &stub{}
	gs := grpc.NewServer()
	pb.RegisterCreditLedgerServer(gs, s)
	pb.RegisterCreditSettingsServer(gs, s)
	lis, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return s, lis.Addr().String()
}

func TestHoldsReversalsStatementsExport(t *testing.T) {
	t.Parallel()
	s, a := startStub(t)
	day := func(n int) *timestamppb.Timestamp {
		return timestamppb.New(time.Date(2026, 3, n, 0, 0, 0, 0, time.UTC))
	}
	tests := []struct {
		name    string
		args    []string
		wantReq proto.Message
		wantOut []string
	}{
		{
			"holds create",
			[]string{"holds", "create", "--account", "client-1", "--amount", "30", "--idempotency-key", "k1", "--ttl", "2d", "--kind", "invoice_payment", "--reference", "order:1"},
			&pb.CreateHoldRequest{Workspace: ws, Account: "client-1", Amount: 30, Kind: pb.TransactionKind_TRANSACTION_KIND_INVOICE_PAYMENT, Reference: "order:1", Ttl: durationpb.New(48 * time.Hour), IdempotencyKey: "k1"},
			[]string{"hold h1: 30 credits held on client-1 until 2026-03-01T12:15:00Z; available 70"},
		},
		{
			"holds create until a time",
			[]string{"holds", "create", "--account", "client-1", "--amount", "30", "--idempotency-key", "k1", "--expire-time", "2026-03-02T00:00:00Z"},
			&pb.CreateHoldRequest{Workspace: ws, Account: "client-1", Amount: 30, ExpireTime: day(2), IdempotencyKey: "k1"},
			[]string{"hold h1"},
		},
		{
			"holds capture",
			[]string{"holds", "capture", "h1", "--amount", "20", "--idempotency-key", "c1"},
			&pb.CaptureHoldRequest{Workspace: ws, HoldId: "h1", Amount: 20, IdempotencyKey: "c1"},
			[]string{"hold h1 captured: 20 of 30 credits", "posted OUT 20 credits (SERVICE_PURCHASE) on client-1: transaction t2, balance 80"},
		},
		{
			"holds void",
			[]string{"holds", "void", "h1", "--idempotency-key", "v1"},
			&pb.VoidHoldRequest{Workspace: ws, HoldId: "h1", IdempotencyKey: "v1"},
			[]string{"hold h1 voided: 30 credits released (replayed"},
		},
		{
			"holds get",
			[]string{"holds", "get", "h1"},
			&pb.GetHoldRequest{Workspace: ws, HoldId: "h1"},
			[]string{"status       ACTIVE", "expires      2026-03-01T12:15:00Z", "transaction  -"},
		},
		{
			"holds list",
			[]string{"holds", "list", "--account", "client-1", "--status", "active"},
			&pb.ListHoldsRequest{Workspace: ws, Account: "client-1", Status: pb.HoldStatus_HOLD_STATUS_ACTIVE, PageSize: 500, PageToken: "p2"},
			[]string{"HOLD  STATUS", "h1    ACTIVE", "h0    EXPIRED"},
		},
		{
			"reverse",
			[]string{"reverse", "t2", "--amount", "5", "--reason", "refund order 1", "--idempotency-key", "r1"},
			&pb.ReverseTransactionRequest{Workspace: ws, TransactionId: "t2", Amount: 5, Reason: "refund order 1", IdempotencyKey: "r1"},
			[]string{"posted IN 5 credits (REVERSAL) on client-1: transaction t3, balance 85, version 3", "transaction t2: 5 of 20 credits reversed"},
		},
		{
			"transaction",
			[]string{"transaction", "t2"},
			&pb.GetTransactionRequest{Workspace: ws, TransactionId: "t2"},
			[]string{"amount         -20", "reversed       5 credits", "hold           h1"},
		},
		{
			"statement",
			[]string{"statement", "--account", "client-1", "--from", "2026-03-01", "--to", "2026-04-01T00:00:00Z"},
			&pb.GetStatementRequest{Workspace: ws, Account: "client-1", StartTime: day(1), EndTime: timestamppb.New(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC))},
			[]string{
				"statement of client-1, 2026-03-01T00:00:00Z to 2026-04-01T00:00:00Z (4 entries)",
				"opening balance                          10",
				"  PURCHASE          1        +100",
				"  EXPIRY            1               -10",
				"total               4        +105   -30",
				"closing balance                          85",
			},
		},
		{
			"history --csv",
			[]string{"history", "--account", "client-1", "--csv", "--since", "2026-03-01T00:00:00Z"},
			&pb.ExportTransactionsRequest{Workspace: ws, Account: "client-1", StartTime: day(1)},
			[]string{stubCSV},
		},
		{
			"credit expiring",
			[]string{"credit", "--account", "client-1", "--amount", "100", "--idempotency-key", "c1", "--expire-time", "2026-03-02T00:00:00Z"},
			&pb.CreditRequest{Workspace: ws, Account: "client-1", Amount: 100, IdempotencyKey: "c1", ExpireTime: day(2)},
			[]string{"posted IN 100 credits", "the credits expire at 2026-03-02T00:00:00Z if unspent"},
		},
		{
			"package with validity",
			[]string{"packages", "create", "--id", "starter", "--name", "Starter", "--credits", "100", "--price", "USD 10", "--validity", "90d"},
			nil,
			[]string{`package starter created: "Starter", 100 credits for USD 10, credits last 90d`},
		},
		{
			"package validity changed",
			[]string{"packages", "update", "starter", "--validity", "30d"},
			nil,
			[]string{"package starter updated", "credits last 30d"},
		},
		{
			"package validity removed",
			[]string{"packages", "update", "starter", "--validity", "never"},
			nil,
			[]string{"package starter updated", "credits never expire"},
		},
	}
	for _, tt := range tests {
		// Sequential: the stub records the last request.
		out := mustCtl(t, a, tt.args...)
		for _, w := range tt.wantOut {
			// Tables are compared with their columns' spacing collapsed.
			if !strings.Contains(out, w) && !strings.Contains(squeeze(out), squeeze(w)) {
				t.Errorf("%s: output lacks %q:\n%s", tt.name, w, out)
			}
		}
		if tt.wantReq != nil {
			if diff := cmp.Diff(tt.wantReq, s.last(), protocmp.Transform()); diff != "" {
				t.Errorf("%s: request (-want +got):\n%s", tt.name, diff)
			}
		}
	}

	// The update sends only the flags given, as its mask.
	mustCtl(t, a, "packages", "update", "starter", "--name", "Starter", "--validity", "36h")
	got := s.last().(*pb.UpdatePackageRequest)
	if !cmp.Equal(got.GetUpdateMask().GetPaths(), []string{"display_name", "validity"}) || got.GetCreditPackage().GetValidity().AsDuration() != 36*time.Hour {
		t.Errorf("packages update: %v", got)
	}
	// The CSV is the server's, byte for byte, and parses.
	out := mustCtl(t, a, "history", "--account", "client-1", "--csv")
	if recs, err := csv.NewReader(strings.NewReader(out)).ReadAll(); err != nil || len(recs) != 2 || recs[1][3] != "'=1+1" {
		t.Errorf("history --csv: %q (%v)", out, err)
	}
}

func TestHoldsAndExportUsage(t *testing.T) {
	t.Parallel()
	_, a := startStub(t)
	for _, args := range [][]string{
		{"holds", "create", "--account", "client-1", "--amount", "30"},
		{"holds", "create", "--account", "client-1", "--amount", "30", "--idempotency-key", "k", "--ttl", "1h", "--expire-time", "2026-03-02T00:00:00Z"},
		{"holds", "create", "--account", "client-1", "--amount", "30", "--idempotency-key", "k", "--ttl", "soon"},
		{"holds", "capture", "h1"},
		{"holds", "void"},
		{"holds", "list", "--account", "client-1", "--status", "gone"},
		{"reverse", "t1", "--idempotency-key", "k"},
		{"statement", "--account", "client-1", "--from", "yesterday", "--to", "2026-03-02"},
		{"history", "--account", "client-1", "--csv", "--type", "in"},
		{"history", "--account", "client-1", "--csv", "--limit", "10"},
		{"credit", "--account", "client-1", "--amount", "1", "--idempotency-key", "k", "--expire-time", "2026-03-02T00:00:00Z", "--expires-in", "1d"},
		{"packages", "update", "starter"},
		{"packages", "create", "--id", "p", "--name", "P", "--credits", "1", "--price", "USD 1", "--validity", "-1d"},
	} {
		if _, errOut, code := ctl(t, a, args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d (usage): %s", args, code, exitUsage, errOut)
		}
	}
}

// squeeze collapses every run of spaces within each line into one.
func squeeze(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}
