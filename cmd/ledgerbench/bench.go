package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
)

type config struct {
	addr        string
	scenario    string
	store       string // a label for the report (postgres, embedded)
	workspace   string
	accounts    int
	concurrency int
	duration    time.Duration
	warmup      time.Duration
	creditPct   int
	ledgerdPID  int
	jsonOut     string
	token       string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	c := config{}
	fs := flag.NewFlagSet("ledgerbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:9090", "ledgerd gRPC address")
	fs.StringVar(&c.scenario, "scenario", "uniform", "uniform (many pre-funded accounts) or hot (one account)")
	fs.StringVar(&c.store, "store", "", "label of the store under test, for the report")
	fs.StringVar(&c.workspace, "workspace", "", "workspace (default: a fresh one per run)")
	fs.IntVar(&c.accounts, "accounts", 10000, "accounts in the uniform scenario")
	fs.IntVar(&c.concurrency, "concurrency", 64, "concurrent clients")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured duration")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured load before the measurement")
	fs.IntVar(&c.creditPct, "credit-percent", 50, "share of credits in the mix, 0..100 (the rest are debits)")
	fs.IntVar(&c.ledgerdPID, "ledgerd-pid", 0, "pid of ledgerd, to report its peak RSS (Linux)")
	fs.StringVar(&c.jsonOut, "json", "", "append the result as a JSON line to this file")
	fs.StringVar(&c.token, "token", os.Getenv("LEDGER_TOKEN"), "bearer token when ledgerd runs with LEDGER_AUTH=token ($LEDGER_TOKEN)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case c.scenario != "uniform" && c.scenario != "hot":
		return c, fmt.Errorf("-scenario %q: want uniform or hot", c.scenario)
	case c.concurrency < 1 || c.accounts < 1 || c.duration <= 0:
		return c, errors.New("-concurrency, -accounts and -duration must be positive")
	case c.creditPct < 0 || c.creditPct > 100:
		return c, errors.New("-credit-percent must be within 0..100")
	}
	if c.scenario == "hot" {
		c.accounts = 1
	}
	if c.workspace == "" {
		c.workspace = fmt.Sprintf("bench-%s-%d", c.scenario, time.Now().UnixNano())
	}
	return c, nil
}

// Result is one scenario's measurement.
type Result struct {
	Scenario    string         `json:"scenario"`
	Store       string         `json:"store,omitempty"`
	Concurrency int            `json:"concurrency"`
	Accounts    int            `json:"accounts"`
	CreditPct   int            `json:"credit_percent"`
	Seconds     float64        `json:"seconds"`
	OK          int64          `json:"ok"`
	Errors      map[string]int `json:"errors"`
	Throughput  float64        `json:"ops_per_second"`
	P50Millis   float64        `json:"p50_ms"`
	P95Millis   float64        `json:"p95_ms"`
	P99Millis   float64        `json:"p99_ms"`
	PeakRSSMiB  float64        `json:"ledgerd_peak_rss_mib,omitempty"`
}

// String is the report's short table.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario %s (%s), %d clients, %d accounts, %d%% credits, %.1fs\n",
		r.Scenario, r.Store, r.Concurrency, r.Accounts, r.CreditPct, r.Seconds)
	fmt.Fprintf(&b, "  %.0f ops/s  (%d ok)\n", r.Throughput, r.OK)
	fmt.Fprintf(&b, "  latency p50 %.2f ms  p95 %.2f ms  p99 %.2f ms\n", r.P50Millis, r.P95Millis, r.P99Millis)
	if len(r.Errors) == 0 {
		b.WriteString("  errors: none\n")
	} else {
		codes := make([]string, 0, len(r.Errors))
		for c := range r.Errors {
			codes = append(codes, c)
		}
		slices.Sort(codes)
		b.WriteString("  errors:")
		for _, c := range codes {
			fmt.Fprintf(&b, " %s=%d", c, r.Errors[c])
		}
		b.WriteString("\n")
	}
	if r.PeakRSSMiB > 0 {
		fmt.Fprintf(&b, "  ledgerd peak RSS %.1f MiB\n", r.PeakRSSMiB)
	}
	return b.String()
}

type client struct {
	ledger   pb.CreditLedgerClient
	settings pb.CreditSettingsClient
	cfg      config
}

// enable turns credit payments on for the workspace: debits are refused
// while they are off.
func (c client) enable(ctx context.Context) error {
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	_, err := c.settings.UpdateSettings(cctx, &pb.UpdateSettingsRequest{
		Workspace: c.cfg.workspace, Settings: &pb.Settings{CreditPaymentsEnabled: true},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"credit_payments_enabled"}},
	})
	return err
}

func (c client) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(parent, 30*time.Second)
	if c.cfg.token != "" {
		ctx = withToken(ctx, c.cfg.token)
	}
	return ctx, cancel
}

// bench pre-funds the accounts, warms up, then measures.
func bench(ctx context.Context, cfg config, log io.Writer) (Result, error) {
	conn, err := grpc.NewClient(cfg.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return Result{}, err
	}
	defer func() { _ = conn.Close() }()
	c := client{ledger: pb.NewCreditLedgerClient(conn), settings: pb.NewCreditSettingsClient(conn), cfg: cfg}

	start := time.Now()
	if err := c.enable(ctx); err != nil {
		return Result{}, fmt.Errorf("enabling credit payments: %w", err)
	}
	if err := c.prefund(ctx); err != nil {
		return Result{}, fmt.Errorf("pre-funding: %w", err)
	}
	_, _ = fmt.Fprintf(log, "ledgerbench: %s: %d account(s) funded in %v\n", cfg.scenario, cfg.accounts, time.Since(start).Round(time.Millisecond))

	if cfg.warmup > 0 {
		_ = c.load(ctx, cfg.warmup, "w")
	}
	m := c.load(ctx, cfg.duration, "m")
	if ctx.Err() != nil {
		return Result{}, ctx.Err()
	}
	res := m.result(cfg)
	if cfg.ledgerdPID > 0 {
		rss, err := peakRSS(cfg.ledgerdPID)
		if err != nil {
			_, _ = fmt.Fprintf(log, "ledgerbench: peak RSS of pid %d: %v\n", cfg.ledgerdPID, err)
		}
		res.PeakRSSMiB = rss
	}
	return res, nil
}

// prefundAmount keeps every debit of the run covered.
const prefundAmount = 1_000_000_000

func (c client) prefund(ctx context.Context) error {
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range min(c.cfg.concurrency, c.cfg.accounts) {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(c.cfg.accounts) || ctx.Err() != nil {
					return
				}
				cctx, cancel := c.ctx(ctx)
				_, err := c.ledger.Credit(cctx, &pb.CreditRequest{
					Workspace: c.cfg.workspace, Account: account(int(i)), Amount: prefundAmount,
					IdempotencyKey: "prefund-" + strconv.FormatInt(i, 10), Kind: pb.TransactionKind_TRANSACTION_KIND_ADJUSTMENT,
				})
				cancel()
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

func account(i int) string { return "acct-" + strconv.Itoa(i) }

// measurement collects one load phase.
type measurement struct {
	elapsed time.Duration
	lat     []time.Duration // successful operations only
	errors  map[string]int
}

// load runs cfg.concurrency clients for d; phase makes keys unique per
// phase. Calls in flight when the time is up finish and count.
func (c client) load(ctx context.Context, d time.Duration, phase string) measurement {
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	lats := make([][]time.Duration, c.cfg.concurrency)
	errs := make([]map[string]int, c.cfg.concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for w := range c.cfg.concurrency {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano()))) //nolint:gosec // G404: load shape, not secrets
			errs[w] = map[string]int{}
			for n := 0; ctx.Err() == nil && time.Now().Before(end); n++ {
				acct := account(rng.IntN(c.cfg.accounts))
				key := fmt.Sprintf("%s-%s-%d-%d", phase, runID, w, n)
				credit := rng.IntN(100) < c.cfg.creditPct
				t0 := time.Now()
				err := c.post(ctx, acct, key, credit)
				el := time.Since(t0)
				switch {
				case err == nil:
					lats[w] = append(lats[w], el)
				case ctx.Err() != nil:
					// interrupted: neither counted nor an error
				default:
					errs[w][status.Code(err).String()]++
				}
			}
		})
	}
	wg.Wait()
	m := measurement{elapsed: time.Since(start), errors: map[string]int{}}
	for w := range c.cfg.concurrency {
		m.lat = append(m.lat, lats[w]...)
		for k, v := range errs[w] {
			m.errors[k] += v
		}
	}
	return m
}

func (c client) post(ctx context.Context, acct, key string, credit bool) error {
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	var err error
	if credit {
		_, err = c.ledger.Credit(cctx, &pb.CreditRequest{
			Workspace: c.cfg.workspace, Account: acct, Amount: 1, IdempotencyKey: key,
			Kind: pb.TransactionKind_TRANSACTION_KIND_PURCHASE, Reference: "bench",
		})
	} else {
		_, err = c.ledger.Debit(cctx, &pb.DebitRequest{
			Workspace: c.cfg.workspace, Account: acct, Amount: 1, IdempotencyKey: key,
			Kind: pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE, Reference: "bench",
		})
	}
	if status.Code(err) == codes.Canceled || status.Code(err) == codes.DeadlineExceeded {
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return err
}

func (m measurement) result(cfg config) Result {
	slices.Sort(m.lat)
	secs := m.elapsed.Seconds()
	return Result{
		Scenario: cfg.scenario, Store: cfg.store, Concurrency: cfg.concurrency, Accounts: cfg.accounts,
		CreditPct: cfg.creditPct, Seconds: secs, OK: int64(len(m.lat)), Errors: m.errors,
		Throughput: float64(len(m.lat)) / secs,
		P50Millis:  millis(percentile(m.lat, 50)), P95Millis: millis(percentile(m.lat, 95)), P99Millis: millis(percentile(m.lat, 99)),
	}
}

// percentile of sorted durations, nearest-rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// peakRSS reads VmHWM (the resident-set high-water mark) of a Linux process.
func peakRSS(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024, err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no VmHWM line")
}

func appendJSON(path string, r Result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600) //nolint:gosec // G304: the operator names the report file
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
