package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// batchMetric is ledgerd's histogram of operations per committed write
// batch.
const batchMetric = "creditledger_write_batch_size"

// histogram is one Prometheus histogram with its series summed over every
// label but le: cumulative counts by upper bound, the sum and the count.
type histogram struct {
	buckets map[float64]float64 // le → cumulative count
	sum     float64
	count   float64
}

// parseHistogram reads the Prometheus text exposition format and returns
// the histogram called name; found is false when no series of it is there.
// A histogram with labels (say, per store) is summed over them.
func parseHistogram(r io.Reader, name string) (h histogram, found bool, err error) {
	h.buckets = map[float64]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, name+"_") { // also skips comments and blank lines
			continue
		}
		series, labels, value, err := parseSample(line)
		if err != nil {
			return h, false, fmt.Errorf("line %d: %w", n, err)
		}
		switch strings.TrimPrefix(series, name) {
		case "_bucket":
			le, ok := labels["le"]
			if !ok {
				return h, false, fmt.Errorf("line %d: %s without le label", n, series)
			}
			bound, err := strconv.ParseFloat(le, 64)
			if err != nil {
				return h, false, fmt.Errorf("line %d: le %q: %w", n, le, err)
			}
			h.buckets[bound] += value
		case "_sum":
			h.sum += value
		case "_count":
			h.count += value
		default:
			continue // another metric sharing the prefix
		}
		found = true
	}
	if err := sc.Err(); err != nil {
		return h, false, err
	}
	return h, found, nil
}

// parseSample splits one sample line, `name{k="v",...} value [timestamp]`,
// into its metric name, labels and value.
func parseSample(line string) (name string, labels map[string]string, value float64, err error) {
	labels = map[string]string{}
	end := strings.IndexAny(line, "{ \t")
	if end <= 0 {
		return "", nil, 0, fmt.Errorf("no value in %q", line)
	}
	name, rest := line[:end], line[end:]
	if rest[0] == '{' {
		rest, err = parseLabels(rest[1:], labels)
		if err != nil {
			return "", nil, 0, fmt.Errorf("%s: %w", name, err)
		}
	}
	fields := strings.Fields(rest)
	if len(fields) < 1 || len(fields) > 2 {
		return "", nil, 0, fmt.Errorf("%s: want a value and an optional timestamp, got %q", name, rest)
	}
	value, err = strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return "", nil, 0, fmt.Errorf("%s: value: %w", name, err)
	}
	return name, labels, value, nil
}

// parseLabels reads `k="v",...}` into labels and returns what follows the
// closing brace. Values are quoted with the escapes \\, \" and \n.
func parseLabels(s string, labels map[string]string) (string, error) {
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return "", errors.New("unterminated label set")
		}
		if s[0] == '}' {
			return s[1:], nil
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || len(s) < eq+2 || s[eq+1] != '"' {
			return "", fmt.Errorf("malformed label in %q", s)
		}
		key := strings.TrimSpace(s[:eq])
		s = s[eq+2:]
		var b strings.Builder
		i := 0
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					b.WriteByte('\n')
				default:
					b.WriteByte(s[i])
				}
				continue
			}
			b.WriteByte(s[i])
		}
		if i == len(s) {
			return "", fmt.Errorf("unterminated value of label %s", key)
		}
		labels[key] = b.String()
		s = s[i+1:]
	}
}

// sub is the histogram of what was observed between before and h. A
// series going backwards means ledgerd restarted in between.
func (h histogram) sub(before histogram) (histogram, error) {
	d := histogram{buckets: make(map[float64]float64, len(h.buckets)), sum: h.sum - before.sum, count: h.count - before.count}
	if d.count < 0 {
		return histogram{}, errors.New("count went backwards: was the process restarted?")
	}
	for le, n := range h.buckets {
		d.buckets[le] = n - before.buckets[le]
		if d.buckets[le] < 0 {
			return histogram{}, fmt.Errorf("bucket le=%g went backwards: was the process restarted?", le)
		}
	}
	return d, nil
}

// quantile is the upper bound of the bucket that holds the q-quantile by
// nearest rank: the smallest le whose cumulative count reaches
// ceil(q·count). It is NaN without observations and +Inf when the rank
// lies beyond the last finite bucket.
func (h histogram) quantile(q float64) float64 {
	if h.count <= 0 {
		return math.NaN()
	}
	// The epsilon keeps 0.9·10 from rounding up to rank 10.
	rank := max(math.Ceil(q*h.count-1e-9), 1)
	bounds := make([]float64, 0, len(h.buckets))
	for le := range h.buckets {
		bounds = append(bounds, le)
	}
	slices.Sort(bounds)
	for _, le := range bounds {
		if h.buckets[le] >= rank {
			return le
		}
	}
	return math.Inf(1)
}

// scrapeHistogram fetches url (a Prometheus /metrics endpoint) and returns
// the histogram called name; found is false when the endpoint answers but
// does not export it.
func scrapeHistogram(ctx context.Context, url, name string) (h histogram, found bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return h, false, err
	}
	// The classic text format: no OpenMetrics, no protobuf.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return h, false, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return h, false, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return parseHistogram(resp.Body, name)
}

// bound is a bucket's upper bound in the JSON report; +Inf, which a JSON
// number cannot hold, is written as the string "+Inf".
type bound float64

// MarshalJSON implements json.Marshaler.
func (b bound) MarshalJSON() ([]byte, error) {
	if math.IsInf(float64(b), 1) {
		return []byte(`"+Inf"`), nil
	}
	return strconv.AppendFloat(nil, float64(b), 'g', -1, 64), nil
}

func (b bound) String() string {
	if math.IsInf(float64(b), 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(float64(b), 'g', -1, 64)
}

// batchReport fills the batch fields of r from the phase's histogram delta
// d: the number of batches and, when there were any, the mean and the
// p50/p90/p99 bucket bounds.
func batchReport(r *Result, d histogram) {
	n := int64(math.Round(d.count))
	r.Batches = &n
	if n == 0 {
		return
	}
	mean := d.sum / d.count
	p50, p90, p99 := bound(d.quantile(0.50)), bound(d.quantile(0.90)), bound(d.quantile(0.99))
	r.BatchMean, r.BatchP50, r.BatchP90, r.BatchP99 = &mean, &p50, &p90, &p99
}
