package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/ledgertest"
)

func TestPercentileNearestRank(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {95, 95 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}} {
		if got := percentile(d, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 99); got != 0 {
		t.Errorf("p99 of nothing = %v", got)
	}
	if got := percentile(d[:1], 99); got != time.Millisecond {
		t.Errorf("p99 of one = %v", got)
	}
}

func TestFlags(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"defaults", nil, true},
		{"hot", []string{"-scenario", "hot"}, true},
		{"unknown scenario", []string{"-scenario", "cold"}, false},
		{"mix out of range", []string{"-credit-percent", "101"}, false},
		{"no clients", []string{"-concurrency", "0"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := parseFlags(c.args, io.Discard)
			if (err == nil) != c.ok {
				t.Fatalf("parseFlags(%q) = %v, want ok=%v", c.args, err, c.ok)
			}
			if c.ok && cfg.scenario == "hot" && cfg.accounts != 1 {
				t.Errorf("hot scenario on %d accounts", cfg.accounts)
			}
			if c.ok && cfg.concurrency != 64 {
				t.Errorf("default concurrency %d, want 64", cfg.concurrency)
			}
		})
	}
}

func TestReport(t *testing.T) {
	r := measurement{
		elapsed: 2 * time.Second,
		lat:     []time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond},
		errors:  map[string]int{"Unavailable": 2},
	}.result(config{scenario: "hot", store: "postgres", concurrency: 64, accounts: 1, creditPct: 50})
	if r.Throughput != 2 || r.OK != 4 || r.P50Millis != 2 || r.P99Millis != 4 {
		t.Fatalf("result = %+v", r)
	}
	if s := r.String(); !strings.Contains(s, "2 ops/s") || !strings.Contains(s, "Unavailable=2") {
		t.Fatalf("report:\n%s", s)
	}
}

// TestReadScenarioAcrossServers runs the read scenario against two ledgers:
// the workers take the servers in turn, and only balances are read.
func TestReadScenarioAcrossServers(t *testing.T) {
	a, b := ledgertest.Start(t), ledgertest.Start(t)
	cfg, err := parseFlags([]string{
		"-addr", a.Addr + "," + b.Addr, "-scenario", "read", "-concurrency", "4", "-accounts", "8",
		"-duration", "1s", "-warmup", "0", "-conservation=false",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	res, err := bench(t.Context(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Servers != 2 || res.OK == 0 || len(res.Errors) != 0 {
		t.Fatalf("result %+v, want reads on 2 servers without errors", res)
	}
	for _, s := range []*ledgertest.Server{a, b} {
		reads, credits := len(s.Calls("GetBalance")), len(s.Calls("Credit"))
		if reads == 0 || credits == 0 {
			t.Errorf("server %s: %d balance reads, %d credits (pre-funding); want both", s.Addr, reads, credits)
		}
		if n := len(s.Calls("Debit")); n != 0 {
			t.Errorf("server %s: %d debits in a read scenario", s.Addr, n)
		}
	}
}
