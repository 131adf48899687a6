package version

import (
	"runtime"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "v1.2.3"
	got := String("ledgerd")
	if !strings.HasPrefix(got, "ledgerd v1.2.3") || !strings.HasSuffix(got, " "+runtime.Version()) {
		t.Fatalf("String = %q, want ledgerd v1.2.3 … %s", got, runtime.Version())
	}
}
