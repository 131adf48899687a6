package main

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// exposition is /metrics text with the batch histogram at the given
// cumulative bucket counts (le 1, 2, 4, …, 256, +Inf), sum and count.
func exposition(cum [10]float64, sum float64) string {
	var b strings.Builder
	b.WriteString("# HELP creditledger_write_batch_size Operations per committed write batch.\n")
	b.WriteString("# TYPE creditledger_write_batch_size histogram\n")
	for i, le := range []string{"1", "2", "4", "8", "16", "32", "64", "128", "256", "+Inf"} {
		b.WriteString(`creditledger_write_batch_size_bucket{le="` + le + `"} ` + ftoa(cum[i]) + "\n")
	}
	b.WriteString("creditledger_write_batch_size_sum " + ftoa(sum) + "\n")
	b.WriteString("creditledger_write_batch_size_count " + ftoa(cum[9]) + "\n")
	return b.String()
}

func ftoa(f float64) string { return bound(f).String() }

func TestParseHistogram(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		text      string
		want      histogram
		wantFound bool
		wantErr   bool
	}{
		{
			name:      "plain",
			text:      exposition([10]float64{1, 3, 3, 7, 7, 7, 7, 7, 7, 7}, 30),
			want:      histogram{buckets: map[float64]float64{1: 1, 2: 3, 4: 3, 8: 7, 16: 7, 32: 7, 64: 7, 128: 7, 256: 7, math.Inf(1): 7}, sum: 30, count: 7},
			wantFound: true,
		},
		{
			name: "summed over labels, with a timestamp, among other metrics",
			text: `# TYPE go_goroutines gauge
go_goroutines 12
creditledger_write_batch_size_total 99
creditledger_write_batch_size_seconds_bucket{le="1"} 5
creditledger_write_batch_size_bucket{store="postgres",le="1"} 2 1700000000000
creditledger_write_batch_size_bucket{le="+Inf", store="postgres"} 4
creditledger_write_batch_size_bucket{store="we\"ird, {x}",le="1"} 1
creditledger_write_batch_size_bucket{store="we\"ird, {x}",le="+Inf"} 1
creditledger_write_batch_size_sum{store="postgres"} 7.5
creditledger_write_batch_size_sum{store="we\"ird, {x}"} 1
creditledger_write_batch_size_count{store="postgres"} 4
creditledger_write_batch_size_count{store="we\"ird, {x}"} 1
`,
			want:      histogram{buckets: map[float64]float64{1: 3, math.Inf(1): 5}, sum: 8.5, count: 5},
			wantFound: true,
		},
		{
			name: "absent",
			text: "# HELP creditledger_transactions_posted_total x\ncreditledger_transactions_posted_total 5\n",
			want: histogram{buckets: map[float64]float64{}},
		},
		{name: "empty", text: "", want: histogram{buckets: map[float64]float64{}}},
		{name: "bucket without le", text: "creditledger_write_batch_size_bucket{store=\"x\"} 1\n", wantErr: true},
		{name: "bad value", text: "creditledger_write_batch_size_count lots\n", wantErr: true},
		{name: "unterminated labels", text: "creditledger_write_batch_size_bucket{le=\"1\" 1\n", wantErr: true},
		{name: "unquoted label", text: "creditledger_write_batch_size_bucket{le=1} 1\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, found, err := parseHistogram(strings.NewReader(tc.text), batchMetric)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if found != tc.wantFound {
				t.Errorf("found = %v, want %v", found, tc.wantFound)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(histogram{})); diff != "" {
				t.Errorf("histogram (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHistogramDeltaAndQuantiles(t *testing.T) {
	t.Parallel()
	inf := math.Inf(1)
	hist := func(cum [10]float64, sum float64) histogram {
		h, _, err := parseHistogram(strings.NewReader(exposition(cum, sum)), batchMetric)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	before := hist([10]float64{10, 10, 10, 10, 10, 10, 10, 10, 10, 10}, 10)
	for _, tc := range []struct {
		name          string
		before, after histogram
		wantCount     float64
		wantMean      float64
		p50, p90, p99 float64
		wantErr       bool
	}{
		{
			// 100 batches: 50 of ≤4, 40 of ≤16, 9 of ≤32, 1 of ≤256.
			name:   "spread",
			before: before,
			after:  hist([10]float64{10, 10, 60, 60, 100, 109, 109, 109, 110, 110}, 10+1000),
			// p90: rank 90 is the last of the ≤16 bucket, not the next one.
			wantCount: 100, wantMean: 10, p50: 4, p90: 16, p99: 32,
		},
		{
			name:      "all in one bucket",
			before:    before,
			after:     hist([10]float64{10, 10, 10, 10, 10, 10, 10, 10, 30, 30}, 10+20*200),
			wantCount: 20, wantMean: 200, p50: 256, p90: 256, p99: 256,
		},
		{
			name:      "beyond the last bucket",
			before:    before,
			after:     hist([10]float64{11, 11, 11, 11, 11, 11, 11, 11, 11, 13}, 10+1+2*600),
			wantCount: 3, wantMean: 1201.0 / 3, p50: inf, p90: inf, p99: inf,
		},
		{
			name:      "first scrape had no series",
			before:    histogram{},
			after:     hist([10]float64{1, 2, 2, 2, 2, 2, 2, 2, 2, 2}, 3),
			wantCount: 2, wantMean: 1.5, p50: 1, p90: 2, p99: 2,
		},
		{
			name:      "no batches in between",
			before:    before,
			after:     before,
			wantCount: 0, wantMean: math.NaN(), p50: math.NaN(), p90: math.NaN(), p99: math.NaN(),
		},
		{
			name:    "restarted in between",
			before:  before,
			after:   hist([10]float64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 1),
			wantErr: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := tc.after.sub(tc.before)
			if (err != nil) != tc.wantErr {
				t.Fatalf("sub: err = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			same := func(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }
			if d.count != tc.wantCount {
				t.Errorf("count = %v, want %v", d.count, tc.wantCount)
			}
			if mean := d.sum / d.count; !same(mean, tc.wantMean) && math.Abs(mean-tc.wantMean) > 1e-9 {
				t.Errorf("mean = %v, want %v", mean, tc.wantMean)
			}
			for _, q := range []struct {
				q, want float64
			}{{0.5, tc.p50}, {0.9, tc.p90}, {0.99, tc.p99}} {
				if got := d.quantile(q.q); !same(got, q.want) {
					t.Errorf("quantile(%v) = %v, want %v", q.q, got, q.want)
				}
			}
		})
	}
}

func TestBatchReportJSON(t *testing.T) {
	t.Parallel()
	h, _, err := parseHistogram(strings.NewReader(exposition([10]float64{0, 0, 0, 0, 0, 0, 0, 0, 1, 2}, 900)), batchMetric)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		fill func(*Result)
		want map[string]any
	}{
		{
			name: "not measured",
			fill: func(*Result) {},
			want: map[string]any{"batch_mean": nil, "batch_p50": nil, "batch_p90": nil, "batch_p99": nil, "batches": nil},
		},
		{
			name: "measured, one batch beyond the buckets",
			fill: func(r *Result) { batchReport(r, h) },
			want: map[string]any{"batch_mean": 450.0, "batch_p50": 256.0, "batch_p90": "+Inf", "batch_p99": "+Inf", "batches": 2.0},
		},
		{
			name: "no batches",
			fill: func(r *Result) { batchReport(r, histogram{}) },
			want: map[string]any{"batch_mean": nil, "batch_p50": nil, "batch_p90": nil, "batch_p99": nil, "batches": 0.0},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var r Result
			tc.fill(&r)
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var all map[string]any
			if err := json.Unmarshal(b, &all); err != nil {
				t.Fatal(err)
			}
			got := map[string]any{}
			for k := range tc.want {
				v, ok := all[k]
				if !ok {
					t.Errorf("no %q in %s", k, b)
				}
				got[k] = v
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("JSON (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScrapeHistogram(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(exposition([10]float64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 1)))
	})
	mux.HandleFunc("GET /old/metrics", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("go_goroutines 3\n"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		path      string
		wantFound bool
		wantErr   bool
	}{
		{"/metrics", true, false},
		{"/old/metrics", false, false},
		{"/nothing", false, true},
	} {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			h, found, err := scrapeHistogram(t.Context(), srv.URL+tc.path, batchMetric)
			if (err != nil) != tc.wantErr || found != tc.wantFound {
				t.Fatalf("scrape %s = found %v, err %v; want found %v, error %v", tc.path, found, err, tc.wantFound, tc.wantErr)
			}
			if found && h.count != 1 {
				t.Errorf("count = %v, want 1", h.count)
			}
		})
	}
}

// FuzzParseHistogram: /metrics is another process's output; no input may
// panic the parser, and what it accepts adds up.
func FuzzParseHistogram(f *testing.F) {
	f.Add(exposition([10]float64{1, 3, 3, 7, 7, 7, 7, 7, 7, 7}, 30))
	f.Add(`creditledger_write_batch_size_bucket{store="a\"b",le="+Inf"} 4 17` + "\n")
	f.Add("creditledger_write_batch_size_bucket{le=\"1\"\n")
	f.Add("creditledger_write_batch_size_sum{\n")
	f.Fuzz(func(t *testing.T, text string) {
		h, found, err := parseHistogram(strings.NewReader(text), batchMetric)
		if err != nil || !found {
			return
		}
		_ = h.quantile(0.99)
		if _, err := h.sub(h); err != nil && !math.IsNaN(h.count) {
			t.Errorf("h − h: %v", err)
		}
	})
}
