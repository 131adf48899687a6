package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestProfileSeconds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{{10 * time.Second, 10}, {2600 * time.Millisecond, 3}, {100 * time.Millisecond, 1}} {
		if got := profileSeconds(tc.d); got != tc.want {
			t.Errorf("profileSeconds(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

func TestFetchProfile(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/profile", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("profile of " + r.URL.Query().Get("seconds") + "s"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name    string
		url     string
		want    string
		wantErr bool
	}{
		{name: "served", url: srv.URL + "/debug/pprof/profile", want: "profile of 7s"},
		{name: "not served", url: srv.URL + "/nothing", wantErr: true},
		{name: "nobody listening", url: "http://127.0.0.1:1/debug/pprof/profile", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "cpu.pprof")
			err := fetchProfile(t.Context(), tc.url, 7, out)
			if (err != nil) != tc.wantErr {
				t.Fatalf("fetchProfile: %v, want error %v", err, tc.wantErr)
			}
			b, rerr := os.ReadFile(out)
			if tc.wantErr {
				if rerr == nil {
					t.Errorf("a failed fetch left %s behind", out)
				}
				return
			}
			if string(b) != tc.want {
				t.Errorf("saved %q, want %q", b, tc.want)
			}
		})
	}
}
