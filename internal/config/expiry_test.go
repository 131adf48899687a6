package config

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestLoadExpiry(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    time.Duration
		wantErr string
	}{
		{name: "default", want: 5 * time.Second},
		{name: "variable", env: map[string]string{EnvExpiryInterval: "250ms"}, want: 250 * time.Millisecond},
		{name: "flag wins", args: []string{"--expiry-interval=1m"}, env: map[string]string{EnvExpiryInterval: "2s"}, want: time.Minute},
		{name: "not a duration", env: map[string]string{EnvExpiryInterval: "often"}, wantErr: EnvExpiryInterval},
		{name: "zero", env: map[string]string{EnvExpiryInterval: "0s"}, wantErr: "expiry interval 0s"},
		{name: "too often", env: map[string]string{EnvExpiryInterval: "1ms"}, wantErr: "must be in [100ms, 1h0m0s]"},
		{name: "too rare", args: []string{"--expiry-interval=2h"}, wantErr: "expiry interval 2h0m0s"},
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
			if c.Expiry.Interval != tc.want {
				t.Fatalf("interval = %v, want %v", c.Expiry.Interval, tc.want)
			}
			if got := c.Redacted()["expiry"].(map[string]any)["interval"]; got != tc.want.String() {
				t.Errorf("start log shows interval %v", got)
			}
		})
	}
}
