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
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
)

type config struct {
	addr         string
	scenario     string
	store        string // a label for the report (postgres, embedded)
	workspace    string
	accounts     int
	concurrency  int
	duration     time.Duration
	warmup       time.Duration
	creditPct    int
	ledgerdPID   int
	pgPID        int
	clkTck       int
	metricsURL   string
	profileURL   string
	profileOut   string
	conservation bool
	jsonOut      string
	token        string
	version      bool // print the version instead of running
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	c := config{}
	fs := flag.NewFlagSet("ledgerbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:9090", "ledgerd gRPC address; several, separated by commas, share the clients in turn (ledgerd replicas on one database)")
	fs.StringVar(&c.scenario, "scenario", "uniform", "uniform (many pre-funded accounts), hot (one account), or read (balance reads of the pre-funded accounts, no writes)")
	fs.StringVar(&c.store, "store", "", "label of the store under test, for the report")
	fs.StringVar(&c.workspace, "workspace", "", "workspace (default: a fresh one per run)")
	fs.IntVar(&c.accounts, "accounts", 10000, "accounts in the uniform scenario")
	fs.IntVar(&c.concurrency, "concurrency", 64, "concurrent clients")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured duration")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured load before the measurement")
	fs.IntVar(&c.creditPct, "credit-percent", 50, "share of credits in the mix, 0..100 (the rest are debits)")
	fs.IntVar(&c.ledgerdPID, "ledgerd-pid", 0, "pid of ledgerd, to report its peak RSS and CPU per operation (Linux)")
	fs.IntVar(&c.pgPID, "pg-pid", 0, "pid of the PostgreSQL postmaster, to report the server's CPU per operation (Linux)")
	fs.IntVar(&c.clkTck, "clk-tck", 100, "clock ticks per second of /proc/<pid>/stat (getconf CLK_TCK)")
	fs.StringVar(&c.metricsURL, "metrics-url", "", "ledgerd's Prometheus endpoint, to report the write batch sizes of the measured phase")
	fs.StringVar(&c.profileURL, "profile-url", "", "ledgerd's pprof CPU profile endpoint (…/debug/pprof/profile)")
	fs.StringVar(&c.profileOut, "profile-out", "", "write a CPU profile of the measured phase to this file (needs -profile-url)")
	fs.BoolVar(&c.conservation, "conservation", true, "check that acknowledged credits − debits equal the workspace's balances")
	fs.StringVar(&c.jsonOut, "json", "", "append the result as a JSON line to this file")
	fs.StringVar(&c.token, "token", os.Getenv("LEDGER_TOKEN"), "bearer token when ledgerd runs with LEDGER_AUTH=token ($LEDGER_TOKEN)")
	fs.BoolVar(&c.version, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.version {
		return c, nil
	}
	switch {
	case c.scenario != "uniform" && c.scenario != "hot" && c.scenario != "read":
		return c, fmt.Errorf("-scenario %q: want uniform, hot or read", c.scenario)
	case len(c.addrs()) == 0:
		return c, errors.New("-addr: no address")
	case c.concurrency < 1 || c.accounts < 1 || c.duration <= 0:
		return c, errors.New("-concurrency, -accounts and -duration must be positive")
	case c.creditPct < 0 || c.creditPct > 100:
		return c, errors.New("-credit-percent must be within 0..100")
	case c.clkTck < 1:
		return c, errors.New("-clk-tck must be positive")
	case (c.profileURL == "") != (c.profileOut == ""):
		return c, errors.New("-profile-url and -profile-out go together")
	}
	if c.scenario == "hot" {
		c.accounts = 1
	}
	if c.workspace == "" {
		c.workspace = fmt.Sprintf("bench-%s-%d", c.scenario, time.Now().UnixNano())
	}
	return c, nil
}

// addrs is -addr split at its commas.
func (c config) addrs() []string {
	var out []string
	for a := range strings.SplitSeq(c.addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// Result is one scenario's measurement. Pointer fields are null in the
// JSON when not measured ("n/a" in the report).
type Result struct {
	Scenario    string         `json:"scenario"`
	Store       string         `json:"store,omitempty"`
	Concurrency int            `json:"concurrency"`
	Servers     int            `json:"ledgerd_servers"`
	Accounts    int            `json:"accounts"`
	CreditPct   int            `json:"credit_percent"`
	Seconds     float64        `json:"seconds"`
	OK          int64          `json:"ok"`
	Errors      map[string]int `json:"errors"`
	// Retries counts the measured phase's attempts whose outcome was
	// unknown and that were sent again with the same idempotency key.
	Retries    map[string]int `json:"retries,omitempty"`
	Throughput float64        `json:"ops_per_second"`
	P50Millis  float64        `json:"p50_ms"`
	P95Millis  float64        `json:"p95_ms"`
	P99Millis  float64        `json:"p99_ms"`
	PeakRSSMiB float64        `json:"ledgerd_peak_rss_mib,omitempty"`

	// Write batches committed during the measured phase, from ledgerd's
	// creditledger_write_batch_size histogram: operations per batch.
	BatchMean *float64 `json:"batch_mean"`
	BatchP50  *bound   `json:"batch_p50"`
	BatchP90  *bound   `json:"batch_p90"`
	BatchP99  *bound   `json:"batch_p99"`
	Batches   *int64   `json:"batches"`
	batchNote string   // why the batch figures are missing

	// CPU seconds (user + system) per 1,000 successful operations of the
	// measured phase: ledgerd's, and the PostgreSQL server's processes'.
	CPUPer1000   *float64 `json:"cpu_seconds_per_1000_ops"`
	PGCPUPer1000 *float64 `json:"pg_cpu_seconds_per_1000_ops,omitempty"`

	ConservationOK *bool         `json:"conservation_ok"`
	Conservation   *Conservation `json:"conservation,omitempty"`
}

// String is the report's short table.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario %s (%s), %d clients, %d accounts, %d%% credits, %.1fs",
		r.Scenario, r.Store, r.Concurrency, r.Accounts, r.CreditPct, r.Seconds)
	if r.Servers > 1 {
		fmt.Fprintf(&b, ", %d ledgerd servers", r.Servers)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  %.0f ops/s  (%d ok)\n", r.Throughput, r.OK)
	fmt.Fprintf(&b, "  latency p50 %.2f ms  p95 %.2f ms  p99 %.2f ms\n", r.P50Millis, r.P95Millis, r.P99Millis)
	if len(r.Errors) == 0 {
		b.WriteString("  errors: none\n")
	} else {
		b.WriteString("  errors:" + byCode(r.Errors) + "\n")
	}
	if len(r.Retries) > 0 {
		b.WriteString("  retried (outcome unknown, same key):" + byCode(r.Retries) + "\n")
	}
	switch {
	case r.Batches == nil:
		fmt.Fprintf(&b, "  write batches: n/a (%s)\n", r.batchNote)
	case r.BatchMean == nil:
		fmt.Fprintf(&b, "  write batches: %d\n", *r.Batches)
	default:
		fmt.Fprintf(&b, "  write batches: %d, mean %.2f ops, p50 ≤ %s, p90 ≤ %s, p99 ≤ %s\n",
			*r.Batches, *r.BatchMean, r.BatchP50, r.BatchP90, r.BatchP99)
	}
	if r.CPUPer1000 != nil {
		fmt.Fprintf(&b, "  ledgerd CPU %.3f s per 1,000 ops\n", *r.CPUPer1000)
	}
	if r.PGCPUPer1000 != nil {
		fmt.Fprintf(&b, "  PostgreSQL CPU %.3f s per 1,000 ops\n", *r.PGCPUPer1000)
	}
	if r.PeakRSSMiB > 0 {
		fmt.Fprintf(&b, "  ledgerd peak RSS %.1f MiB\n", r.PeakRSSMiB)
	}
	if r.Conservation != nil {
		verdict := "ok"
		if !r.Conservation.OK() {
			verdict = "FAILED"
		}
		fmt.Fprintf(&b, "  conservation: %s (%s)\n", verdict, r.Conservation)
	}
	return b.String()
}

func byCode(m map[string]int) string {
	codes := make([]string, 0, len(m))
	for c := range m {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var b strings.Builder
	for _, c := range codes {
		fmt.Fprintf(&b, " %s=%d", c, m[c])
	}
	return b.String()
}

// Conservation compares what the ledger acknowledged to the scenario's
// workspace, over every phase, with the balances it holds afterwards.
type Conservation struct {
	Baseline   int64 `json:"balances_before"` // sum of balances before pre-funding (0 for a fresh workspace)
	Credited   int64 `json:"acknowledged_credits"`
	Debited    int64 `json:"acknowledged_debits"`
	BalanceSum int64 `json:"balances_after"`
	Unknown    int64 `json:"unknown_outcomes,omitempty"` // writes whose outcome stayed unknown
}

// OK reports whether every credit was conserved: nothing posted that was
// not acknowledged, nothing acknowledged that was not posted.
func (c Conservation) OK() bool {
	return c.Unknown == 0 && c.Baseline+c.Credited-c.Debited == c.BalanceSum
}

func (c Conservation) String() string {
	s := fmt.Sprintf("acknowledged credits %d − debits %d", c.Credited, c.Debited)
	if c.Baseline != 0 {
		s = fmt.Sprintf("balances before %d + %s", c.Baseline, s)
	}
	s += fmt.Sprintf(" = %d; sum of balances %d", c.Baseline+c.Credited-c.Debited, c.BalanceSum)
	if c.Unknown > 0 {
		s += fmt.Sprintf("; %d write(s) of unknown outcome", c.Unknown)
	}
	return s
}

type client struct {
	ledger   pb.CreditLedgerClient
	ledgers  []pb.CreditLedgerClient // one per -addr; worker w uses ledgers[w % n]
	settings pb.CreditSettingsClient
	cfg      config
	wait     func(context.Context, time.Duration) error // between retries; nil: a real timer
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

// bench pre-funds the accounts, warms up, then measures. Every phase's
// acknowledged writes count toward the conservation check.
func bench(ctx context.Context, cfg config, log io.Writer) (Result, error) {
	var c client
	for i, addr := range cfg.addrs() {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return Result{}, err
		}
		defer func() { _ = conn.Close() }()
		if i == 0 {
			c = client{ledger: pb.NewCreditLedgerClient(conn), settings: pb.NewCreditSettingsClient(conn), cfg: cfg}
		}
		c.ledgers = append(c.ledgers, pb.NewCreditLedgerClient(conn))
	}
	var err error

	start := time.Now()
	if err := c.enable(ctx); err != nil {
		return Result{}, fmt.Errorf("enabling credit payments: %w", err)
	}
	var baseline int64
	if cfg.conservation {
		if baseline, err = c.balanceSum(ctx); err != nil {
			return Result{}, fmt.Errorf("summing balances before pre-funding: %w", err)
		}
	}
	acked, err := c.prefund(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("pre-funding: %w", err)
	}
	_, _ = fmt.Fprintf(log, "ledgerbench: %s: %d account(s) funded in %v\n", cfg.scenario, cfg.accounts, time.Since(start).Round(time.Millisecond))

	if cfg.warmup > 0 {
		w := c.load(ctx, cfg.warmup, "w")
		acked.add(w.tally)
	}

	// The probes bracket the measured phase; each keeps its own cost
	// (a scrape makes ledgerd work) outside the CPU window.
	var before, after probe
	before.scrape(ctx, cfg)
	before.readCPU(cfg)
	profiled := c.startProfile(ctx)
	m := c.load(ctx, cfg.duration, "m")
	after.readCPU(cfg)
	after.scrape(ctx, cfg)
	if err := profiled(); err != nil {
		_, _ = fmt.Fprintf(log, "ledgerbench: warning: no CPU profile: %v\n", err)
	} else if cfg.profileOut != "" {
		_, _ = fmt.Fprintf(log, "ledgerbench: CPU profile of the measured phase: %s\n", cfg.profileOut)
	}
	if ctx.Err() != nil {
		return Result{}, ctx.Err()
	}
	acked.add(m.tally)

	res := m.result(cfg)
	if note := report(&res, before, after, cfg); note != "" {
		_, _ = fmt.Fprintf(log, "ledgerbench: warning: %s\n", note)
	}
	if cfg.conservation {
		// Every call has returned (load waits for its workers), so the
		// balances are final.
		sum, err := c.balanceSum(ctx)
		if err != nil {
			return Result{}, fmt.Errorf("summing balances: %w", err)
		}
		cons := Conservation{Baseline: baseline, Credited: acked.credited, Debited: acked.debited, BalanceSum: sum, Unknown: acked.unknown}
		ok := cons.OK()
		res.Conservation, res.ConservationOK = &cons, &ok
	}
	if cfg.ledgerdPID > 0 {
		rss, err := peakRSS(cfg.ledgerdPID)
		if err != nil {
			_, _ = fmt.Fprintf(log, "ledgerbench: peak RSS of pid %d: %v\n", cfg.ledgerdPID, err)
		}
		res.PeakRSSMiB = rss
	}
	return res, nil
}

// probe is the state of ledgerd (and PostgreSQL) at one edge of the
// measured phase.
type probe struct {
	hist          histogram
	histFound     bool
	histErr       error
	cpu, pgCPU    int64 // clock ticks
	cpuErr, pgErr error
}

func (p *probe) scrape(ctx context.Context, cfg config) {
	if cfg.metricsURL != "" {
		p.hist, p.histFound, p.histErr = scrapeHistogram(ctx, cfg.metricsURL, batchMetric)
	}
}

func (p *probe) readCPU(cfg config) {
	if cfg.ledgerdPID > 0 {
		p.cpu, p.cpuErr = processCPU(cfg.ledgerdPID)
	}
	if cfg.pgPID > 0 {
		p.pgCPU, p.pgErr = treeCPU(cfg.pgPID)
	}
}

// report fills r's batch and CPU figures from the probes around the
// measured phase, and returns what could not be measured and why, for a
// warning ("" when nothing went wrong). An absent batch metric is not an
// error: older ledgerd builds do not export it.
func report(r *Result, before, after probe, cfg config) string {
	var warn []string
	switch {
	case cfg.metricsURL == "":
		r.batchNote = "no -metrics-url"
	case before.histErr != nil || after.histErr != nil:
		r.batchNote = fmt.Sprintf("scraping %s: %v", cfg.metricsURL, errors.Join(before.histErr, after.histErr))
		warn = append(warn, r.batchNote)
	case !after.histFound:
		r.batchNote = "ledgerd does not export " + batchMetric
	default:
		// Absent before and present after: a labelled histogram shows
		// up with its first observation, so before is all zeros.
		d, err := after.hist.sub(before.hist)
		if err != nil {
			r.batchNote = fmt.Sprintf("%s: %v", batchMetric, err)
			warn = append(warn, r.batchNote)
			break
		}
		batchReport(r, d)
	}
	perOps := func(pid int, b, a int64, be, ae error, what string) *float64 {
		if pid <= 0 {
			return nil
		}
		if err := errors.Join(be, ae); err != nil {
			warn = append(warn, fmt.Sprintf("%s CPU (pid %d): %v", what, pid, err))
			return nil
		}
		v, ok := cpuPer1000(a-b, cfg.clkTck, r.OK)
		if !ok {
			return nil
		}
		return &v
	}
	r.CPUPer1000 = perOps(cfg.ledgerdPID, before.cpu, after.cpu, before.cpuErr, after.cpuErr, "ledgerd")
	r.PGCPUPer1000 = perOps(cfg.pgPID, before.pgCPU, after.pgCPU, before.pgErr, after.pgErr, "PostgreSQL")
	return strings.Join(warn, "; ")
}

// startProfile starts fetching a CPU profile of ledgerd covering the
// measured phase, when asked to; the returned function waits for it.
func (c client) startProfile(ctx context.Context) (wait func() error) {
	if c.cfg.profileURL == "" {
		return func() error { return nil }
	}
	done := make(chan error, 1)
	go func() {
		done <- fetchProfile(ctx, c.cfg.profileURL, profileSeconds(c.cfg.duration), c.cfg.profileOut)
	}()
	return func() error { return <-done }
}

// balanceSum is the sum of the balances of every account of the workspace.
func (c client) balanceSum(ctx context.Context) (int64, error) {
	var sum int64
	token := ""
	for {
		cctx, cancel := c.ctx(ctx)
		resp, err := c.ledger.ListAccounts(cctx, &pb.ListAccountsRequest{Workspace: c.cfg.workspace, PageSize: 500, PageToken: token})
		cancel()
		if err != nil {
			return 0, err
		}
		for _, a := range resp.GetAccounts() {
			sum += a.GetBalance()
		}
		if token = resp.GetNextPageToken(); token == "" {
			return sum, nil
		}
	}
}

// prefundAmount keeps every debit of the run covered.
const prefundAmount = 1_000_000_000

// prefund credits every account; it returns what the ledger acknowledged.
func (c client) prefund(ctx context.Context) (tally, error) {
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var total tally
	var wg sync.WaitGroup
	for w := range min(c.cfg.concurrency, c.cfg.accounts) {
		c := c.worker(w)
		wg.Go(func() {
			var t tally
			var err error
			retries := map[string]int{}
			for err == nil {
				i := next.Add(1) - 1
				if i >= int64(c.cfg.accounts) || ctx.Err() != nil {
					break
				}
				w := write{
					account: account(int(i)), amount: prefundAmount, credit: true,
					key: "prefund-" + strconv.FormatInt(i, 10), kind: pb.TransactionKind_TRANSACTION_KIND_ADJUSTMENT,
				}
				var posted bool
				if posted, err = c.send(ctx, w, retries); err == nil && posted {
					t.count(w)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			total.add(t)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	return total, firstErr
}

// worker is the client of load worker w: the ledgerd servers take the
// workers in turn.
func (c client) worker(w int) client {
	if len(c.ledgers) > 0 {
		c.ledger = c.ledgers[w%len(c.ledgers)]
	}
	return c
}

// read is one operation of the read scenario: a balance read.
func (c client) read(ctx context.Context, acct string) error {
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	_, err := c.ledger.GetBalance(cctx, &pb.GetBalanceRequest{Workspace: c.cfg.workspace, Account: acct})
	return err
}

func account(i int) string { return "acct-" + strconv.Itoa(i) }

// measurement collects one load phase.
type measurement struct {
	elapsed time.Duration
	lat     []time.Duration // successful operations only
	errors  map[string]int  // operations that ended in an error, by gRPC code
	retries map[string]int  // attempts of unknown outcome, sent again
	tally   tally
}

// load runs cfg.concurrency clients for d; phase makes keys unique per
// phase. Calls in flight when the time is up finish and count.
func (c client) load(ctx context.Context, d time.Duration, phase string) measurement {
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	parts := make([]measurement, c.cfg.concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for w := range c.cfg.concurrency {
		c := c.worker(w)
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano()))) //nolint:gosec // G404: load shape, not secrets
			p := measurement{errors: map[string]int{}, retries: map[string]int{}}
			for n := 0; ctx.Err() == nil && time.Now().Before(end); n++ {
				if c.cfg.scenario == "read" {
					t0 := time.Now()
					err := c.read(ctx, account(rng.IntN(c.cfg.accounts)))
					switch {
					case err == nil:
						p.lat = append(p.lat, time.Since(t0))
					case ctx.Err() == nil:
						p.errors[codeOf(err)]++
					}
					continue
				}
				op := write{
					account: account(rng.IntN(c.cfg.accounts)), amount: 1,
					key:    fmt.Sprintf("%s-%s-%d-%d", phase, runID, w, n),
					credit: rng.IntN(100) < c.cfg.creditPct,
				}
				t0 := time.Now()
				posted, err := c.send(ctx, op, p.retries)
				el := time.Since(t0)
				switch {
				case err == nil:
					p.lat = append(p.lat, el)
					if posted {
						p.tally.count(op)
					}
				case ctx.Err() != nil:
					// interrupted: neither counted nor an error
				default:
					p.errors[codeOf(err)]++
					if errors.Is(err, errUnknownOutcome) {
						p.tally.unknown++
					}
				}
			}
			parts[w] = p
		})
	}
	wg.Wait()
	m := measurement{elapsed: time.Since(start), errors: map[string]int{}, retries: map[string]int{}}
	for _, p := range parts {
		m.lat = append(m.lat, p.lat...)
		for k, v := range p.errors {
			m.errors[k] += v
		}
		for k, v := range p.retries {
			m.retries[k] += v
		}
		m.tally.add(p.tally)
	}
	return m
}

func (m measurement) result(cfg config) Result {
	slices.Sort(m.lat)
	secs := m.elapsed.Seconds()
	r := Result{
		Scenario: cfg.scenario, Store: cfg.store, Concurrency: cfg.concurrency, Servers: len(cfg.addrs()), Accounts: cfg.accounts,
		CreditPct: cfg.creditPct, Seconds: secs, OK: int64(len(m.lat)), Errors: m.errors,
		Throughput: float64(len(m.lat)) / secs,
		P50Millis:  millis(percentile(m.lat, 50)), P95Millis: millis(percentile(m.lat, 95)), P99Millis: millis(percentile(m.lat, 99)),
	}
	if len(m.retries) > 0 {
		r.Retries = m.retries
	}
	return r
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
