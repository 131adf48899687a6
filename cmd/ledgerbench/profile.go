package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"
)

// profileSeconds is the length of the CPU profile taken over a measured
// phase of d: pprof counts whole seconds.
func profileSeconds(d time.Duration) int {
	return max(int(math.Round(d.Seconds())), 1)
}

// fetchProfile asks a net/http/pprof endpoint (…/debug/pprof/profile) for
// a CPU profile of the next seconds and writes it to out. It blocks for
// those seconds.
func fetchProfile(ctx context.Context, profileURL string, seconds int, out string) error {
	u, err := url.Parse(profileURL)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("seconds", strconv.Itoa(seconds))
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds)*time.Second+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", u.Redacted(), resp.Status, msg)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(out, body, 0o600)
}
