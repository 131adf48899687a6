package consumer

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadSecret(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(path, []byte("  s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr bool
	}{
		{"variable", map[string]string{"X": "v"}, "v", false},
		{"file, trimmed", map[string]string{"X_FILE": path}, "s3cret", false},
		{"neither", nil, "", false},
		{"both", map[string]string{"X": "v", "X_FILE": path}, "", true},
		{"missing file", map[string]string{"X_FILE": path + ".none"}, "", true},
		{"empty file", map[string]string{"X_FILE": empty}, "", true},
	}
	for _, tt := range tests {
		got, err := ReadSecret(func(k string) string { return tt.env[k] }, "X")
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%s: %q, %v", tt.name, got, err)
		}
	}
}

func TestRequireLoopback(t *testing.T) {
	t.Parallel()
	for addr, ok := range map[string]bool{
		"127.0.0.1:8081": true, "[::1]:0": true, "localhost:80": true,
		"0.0.0.0:8081": false, ":8081": false, "10.0.0.5:1": false, "example.com:80": false, "nonsense": false,
	} {
		if err := RequireLoopback(addr); (err == nil) != ok {
			t.Errorf("%s: %v, want allowed=%v", addr, err, ok)
		}
	}
}
