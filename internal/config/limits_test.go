package config

import (
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRateLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    RateLimit
		wantErr bool
	}{
		{in: "0", want: RateLimit{}},
		{in: "off", want: RateLimit{}},
		{in: "100/s", want: RateLimit{PerSecond: 100, Burst: 100}},
		{in: "100/s:500", want: RateLimit{PerSecond: 100, Burst: 500}},
		{in: "0.5/s", want: RateLimit{PerSecond: 0.5, Burst: 1}},
		{in: "12/m:5", want: RateLimit{PerSecond: 0.2, Burst: 5}},
		{in: "100", wantErr: true},
		{in: "100/h", wantErr: true},
		{in: "-1/s", wantErr: true},
		{in: "0/s", wantErr: true},
		{in: "NaN/s", wantErr: true},
		{in: "Inf/s", wantErr: true},
		{in: "10/s:0", wantErr: true},
		{in: "10/s:x", wantErr: true},
		{in: "", wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseRateLimit(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseRateLimit(%q) = %v, %v; want error %v", tc.in, got, err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); !tc.wantErr && diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
			if !tc.wantErr && !got.Off() {
				if back, err := ParseRateLimit(got.String()); err != nil || back != got {
					t.Fatalf("String %q does not parse back: %v, %v", got.String(), back, err)
				}
			}
		})
	}
}

func TestLoadLimits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    Limits
		wantErr string
	}{
		{name: "defaults", want: DefaultLimits()},
		{
			name: "every variable",
			env: map[string]string{
				EnvMaxPendingRequests: "5", EnvRateLimitWorkspace: "50/s:100", EnvRateLimitSubject: "0",
				EnvRateLimitSubjectWrite: "off", EnvRateLimitSubmit: "6/m:2",
			},
			want: Limits{
				MaxPendingRequests: 5, RateWorkspace: RateLimit{PerSecond: 50, Burst: 100},
				RateSubmit: RateLimit{PerSecond: 0.1, Burst: 2},
			},
		},
		{
			name: "flags win",
			args: []string{"--max-pending-requests=7", "--rate-limit-workspace=0", "--rate-limit-submit", "1/s:3"},
			env:  map[string]string{EnvMaxPendingRequests: "5", EnvRateLimitWorkspace: "50/s"},
			want: func() Limits {
				l := DefaultLimits()
				l.MaxPendingRequests, l.RateWorkspace, l.RateSubmit = 7, RateLimit{}, RateLimit{PerSecond: 1, Burst: 3}
				return l
			}(),
		},
		{name: "pending cap of 0", env: map[string]string{EnvMaxPendingRequests: "0"}, wantErr: "max pending requests 0"},
		{name: "pending cap too large", env: map[string]string{EnvMaxPendingRequests: "1001"}, wantErr: "must be 1 to 1000"},
		{name: "pending cap not a number", env: map[string]string{EnvMaxPendingRequests: "lots"}, wantErr: EnvMaxPendingRequests},
		{name: "bad rate", env: map[string]string{EnvRateLimitSubject: "fast"}, wantErr: EnvRateLimitSubject},
		{name: "bad rate flag", args: []string{"--rate-limit-subject=1/y"}, wantErr: "rate-limit-subject"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{EnvAuthSecret: secret}
			for k, v := range tc.env {
				env[k] = v
			}
			c, err := Load(tc.args, envOf(env), io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, c.Limits); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}
