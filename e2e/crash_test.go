package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
)

// Crash safety: the real ledgerd is SIGKILLed at random moments while
// concurrent clients post credits and debits with idempotency keys. After
// every restart each request whose answer was lost is retried with its key.
// In the end every acknowledged operation is in the ledger exactly once,
// nothing else is, every account's chain holds, and `ledgerd verify` (with
// the embedded store's integrity check) passes.

const (
	crashRounds   = 20
	crashWorkers  = 8
	crashAccounts = 4
	crashWS       = "crash"
)

func TestCrashRecovery(t *testing.T) {
	bin := binaries(t)
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		crashRecovery(t, bin, envKV("LEDGER_DATA_DIR", t.TempDir()))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		crashRecovery(t, bin, postgresEnv(t)...)
	})
}

// op is one posting a client asked for.
type op struct {
	key     string
	account string
	credit  bool
	amount  int64

	// outcome: exactly one of acked, refused or neither (unknown: the
	// answer was lost with the process).
	acked   bool
	txID    string
	refused string // the business reason of a definitive refusal
}

type crashClient struct {
	conn   *grpc.ClientConn
	ledger pb.CreditLedgerClient
}

func dialLedger(t *testing.T, addr string) crashClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	return crashClient{conn: conn, ledger: pb.NewCreditLedgerClient(conn)}
}

// post sends o once. It returns nil when the outcome is known (acked or
// refused) and the transport error when it is not.
func (c crashClient) post(ctx context.Context, o *op) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var (
		tx  *pb.Transaction
		err error
	)
	if o.credit {
		var res *pb.CreditResponse
		res, err = c.ledger.Credit(ctx, &pb.CreditRequest{Workspace: crashWS, Account: o.account, Amount: o.amount, IdempotencyKey: o.key, Reference: "crash:" + o.key})
		tx = res.GetTransaction()
	} else {
		var res *pb.DebitResponse
		res, err = c.ledger.Debit(ctx, &pb.DebitRequest{Workspace: crashWS, Account: o.account, Amount: o.amount, IdempotencyKey: o.key, Reference: "crash:" + o.key})
		tx = res.GetTransaction()
	}
	if err == nil {
		if tx.GetId() == "" || tx.GetIdempotencyKey() != o.key || tx.GetAmount() != o.amount {
			return fmt.Errorf("acknowledged %s with a transaction that does not match: %v", o.key, tx)
		}
		o.acked, o.txID, o.refused = true, tx.GetId(), ""
		return nil
	}
	st := status.Convert(err)
	if st.Code() == codes.FailedPrecondition {
		for _, d := range st.Details() {
			if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetReason() == "INSUFFICIENT_CREDITS" {
				o.refused = ei.GetReason()
				return nil
			}
		}
	}
	return err
}

func crashRecovery(t *testing.T, bin string, storeEnv ...string) {
	ledgerd := filepath.Join(bin, exe("ledgerd"))
	env := append([]string{envKV("LEDGER_AUTH", "none"), envKV("LEDGER_PAGE_TOKEN_KEY", "00112233445566778899aabbccddeeff")}, storeEnv...)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 42)) //nolint:gosec // G404: test schedule
	t.Logf("seed %d; %d rounds × %d workers on %d accounts", seed, crashRounds, crashWorkers, crashAccounts)

	var (
		mu  sync.Mutex
		ops []*op
		seq int
	)
	newOp := func(r *rand.Rand) *op {
		mu.Lock()
		defer mu.Unlock()
		seq++
		o := &op{
			key:     fmt.Sprintf("crash-%06d", seq),
			account: fmt.Sprintf("acct-%d", r.IntN(crashAccounts)),
			credit:  r.IntN(100) < 55,
			amount:  1 + r.Int64N(100),
		}
		ops = append(ops, o)
		return o
	}
	unknown := func() []*op {
		mu.Lock()
		defer mu.Unlock()
		var out []*op
		for _, o := range ops {
			if !o.acked && o.refused == "" {
				out = append(out, o)
			}
		}
		return out
	}

	killedMidWrite := 0
	for round := 1; round <= crashRounds; round++ {
		p := startProc(t, ledgerd, []string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"}, env...)
		c := dialLedger(t, p.field(t, "grpc_addr"))

		if round == 1 {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			_, err := pb.NewCreditSettingsClient(c.conn).UpdateSettings(ctx, &pb.UpdateSettingsRequest{
				Workspace: crashWS, Settings: &pb.Settings{CreditPaymentsEnabled: true},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"credit_payments_enabled"}},
			})
			cancel()
			if err != nil {
				t.Fatalf("enable credit payments: %v", err)
			}
		}

		// First, settle every request whose answer the last crash swallowed.
		for _, o := range unknown() {
			if err := c.post(t.Context(), o); err != nil {
				t.Fatalf("round %d: retrying %s after restart: %v", round, o.key, err)
			}
		}

		// Then load, and kill at a random moment.
		ctx, stopLoad := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		unexpected := make(chan error, crashWorkers)
		for w := range crashWorkers {
			r := rand.New(rand.NewPCG(rng.Uint64(), uint64(w))) //nolint:gosec // G404: test schedule
			wg.Go(func() {
				for ctx.Err() == nil {
					o := newOp(r)
					if err := c.post(ctx, o); err != nil {
						// The process is gone (or going): the op stays
						// unknown. Any other answer is a bug.
						switch status.Code(err) {
						case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded:
						default:
							unexpected <- fmt.Errorf("%s: %w", o.key, err)
						}
						return
					}
				}
			})
		}
		time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatalf("round %d: SIGKILL: %v", round, err)
		}
		<-p.done
		wg.Wait()
		stopLoad()
		close(unexpected)
		for err := range unexpected {
			t.Errorf("round %d: an operation got a definitive error no crash explains: %v", round, err)
		}
		if t.Failed() {
			t.FailNow()
		}
		_ = c.conn.Close()
		if n := len(unknown()); n > 0 {
			killedMidWrite++
		}
	}
	if killedMidWrite == 0 {
		t.Errorf("no round was killed with a request in flight: the test did not exercise a crash during a write")
	}

	// Final restart: settle the last unknowns, then audit through the API.
	p := startProc(t, ledgerd, []string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"}, env...)
	c := dialLedger(t, p.field(t, "grpc_addr"))
	defer func() { _ = c.conn.Close() }()
	for _, o := range unknown() {
		if err := c.post(t.Context(), o); err != nil {
			t.Fatalf("final retry of %s: %v", o.key, err)
		}
	}
	byKey := map[string]*op{}
	acked, refused := 0, 0
	for _, o := range ops {
		byKey[o.key] = o
		if o.acked {
			acked++
		} else {
			refused++
		}
	}
	t.Logf("%d operations: %d acknowledged, %d refused (insufficient credits); %d rounds killed with requests in flight",
		len(ops), acked, refused, killedMidWrite)

	for a := range crashAccounts {
		account := fmt.Sprintf("acct-%d", a)
		txs := listAll(t, c, account)
		seen := map[string]bool{}
		var balance int64
		for i, tx := range txs { // oldest first
			if tx.GetAccountVersion() != int64(i+1) {
				t.Errorf("%s: entry %d has version %d: gap or duplicate", account, i, tx.GetAccountVersion())
			}
			if tx.GetType() == pb.TransactionType_TRANSACTION_TYPE_IN {
				balance += tx.GetAmount()
			} else {
				balance -= tx.GetAmount()
			}
			if balance < 0 || tx.GetBalanceAfter() != balance {
				t.Errorf("%s v%d: balance_after %d, recomputed %d", account, tx.GetAccountVersion(), tx.GetBalanceAfter(), balance)
			}
			k := tx.GetIdempotencyKey()
			if seen[k] {
				t.Errorf("%s: key %s posted twice", account, k)
			}
			seen[k] = true
			o := byKey[k]
			switch {
			case o == nil:
				t.Errorf("%s: transaction %s with key %q nobody sent", account, tx.GetId(), k)
			case !o.acked:
				t.Errorf("%s: %s was refused (%s) yet posted", account, k, o.refused)
			case o.txID != tx.GetId() || o.account != account || o.amount != tx.GetAmount():
				t.Errorf("%s: %s acknowledged as %s/%s/%d, ledger holds %s/%s/%d", account, k, o.txID, o.account, o.amount, tx.GetId(), account, tx.GetAmount())
			}
		}
		for _, o := range ops {
			if o.account == account && o.acked && !seen[o.key] {
				t.Errorf("%s: acknowledged %s (%s) is missing", account, o.key, o.txID)
			}
		}
		b, err := c.ledger.GetBalance(t.Context(), &pb.GetBalanceRequest{Workspace: crashWS, Account: account})
		if err != nil {
			t.Fatal(err)
		}
		if b.GetBalance().GetBalance() != balance || b.GetBalance().GetVersion() != int64(len(txs)) {
			t.Errorf("%s: balance %d v%d, entries sum to %d over %d", account, b.GetBalance().GetBalance(), b.GetBalance().GetVersion(), balance, len(txs))
		}
	}

	// ledgerd verify on the stopped store: chains, keys, integrity.
	if code := p.stop(t); code != 0 {
		t.Fatalf("ledgerd exited %d on SIGTERM", code)
	}
	cmd := exec.CommandContext(t.Context(), ledgerd, "verify") //nolint:gosec // the binary this test built
	cmd.Env = append(baseEnv(), env...)
	out, err := cmd.Output()
	if err != nil {
		var xe *exec.ExitError
		if errors.As(err, &xe) {
			t.Fatalf("ledgerd verify failed (exit %d):\n%s\n%s", xe.ExitCode(), out, xe.Stderr)
		}
		t.Fatalf("ledgerd verify: %v", err)
	}
	if !strings.Contains(string(out), "ok:") {
		t.Fatalf("ledgerd verify printed no ok line:\n%s", out)
	}
	t.Logf("ledgerd verify:\n%s", out)
}

// listAll reads an account's whole history, oldest first.
func listAll(t *testing.T, c crashClient, account string) []*pb.Transaction {
	t.Helper()
	var all []*pb.Transaction
	token := ""
	for {
		res, err := c.ledger.ListTransactions(t.Context(), &pb.ListTransactionsRequest{
			Workspace: crashWS, Account: account, PageSize: 500, PageToken: token,
		})
		if err != nil {
			t.Fatalf("list %s: %v", account, err)
		}
		all = append(all, res.GetTransactions()...)
		if token = res.GetNextPageToken(); token == "" {
			break
		}
	}
	for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 { // newest first → oldest first
		all[i], all[j] = all[j], all[i]
	}
	return all
}
