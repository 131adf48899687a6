// Package version says which build of CreditLedger a binary is, for the
// --version flag every binary has and for the logs.
package version

import (
	"runtime"
	"runtime/debug"
)

// Version is set at link time (-ldflags "-X .../internal/version.Version=v1.2.3");
// without it, the module version recorded by `go install`, else "dev".
var Version = "dev"

// String is "<binary> <version> <go version>", with the VCS revision when
// the build recorded one: "ledgerd dev (a1b2c3d, modified) go1.26.8".
func String(binary string) string {
	v := Version
	rev, dirty := "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		if dirty {
			rev += ", modified"
		}
		v += " (" + rev + ")"
	}
	return binary + " " + v + " " + runtime.Version()
}
