// Package browser drives the portal in a real headless Chromium: the
// whole demo stack (ledgerd, checkout, invoicing, the Stripe stand-in and
// the portal, built from this tree and started as processes) is clicked
// through every flow a client and the agency use, with a screenshot of
// each step, a keyboard-only walk of every page and an accessibility
// smoke check.
//
// Chromium must be installed (scripts/ensure-chromium.sh, run by make
// test, installs Debian's package): without it these tests fail, they are
// never skipped. CHROMIUM_BIN names another binary; PORTAL_SCREENSHOTS
// names the directory the screenshots go to (default: a temporary one,
// printed).
package browser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/creditledger/creditledger/internal/demo"
)

var (
	// stack is the running demo every test uses.
	stack *demo.Stack
	// browserCtx is the one Chromium of the test binary; each test opens
	// its tabs in a browser context of its own (its own cookies).
	browserCtx context.Context
	// shots is where the screenshots go.
	shots string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	chromium := os.Getenv("CHROMIUM_BIN")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the portal's browser tests need Chromium at %s (%v): run scripts/ensure-chromium.sh (make test does), or set CHROMIUM_BIN\n", chromium, err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "portal-browser")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	if shots = os.Getenv("PORTAL_SCREENSHOTS"); shots == "" {
		shots = filepath.Join(tmp, "screenshots")
	}
	if err := os.MkdirAll(shots, 0o750); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	bin := filepath.Join(tmp, "bin")
	if err := build(bin); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	stack, err = demo.Start(ctx, demo.Options{BinDir: bin, DataDir: filepath.Join(tmp, "data"), StartTimeout: 90 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: start the demo stack:", err)
		return 1
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(filepath.Join(tmp, "chromium-profile")), chromedp.WindowSize(1200, 900),
	)
	var cancelBrowser context.CancelFunc
	browserCtx, cancelBrowser = chromedp.NewContext(alloc)
	code := 1
	if err := chromedp.Do(browserCtx); err != nil { // starts Chromium
		fmt.Fprintln(os.Stderr, "FAIL: start Chromium:", err)
	} else {
		code = m.Run()
	}
	cancelBrowser()
	cancelAlloc()
	if err := stack.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: the demo stack did not stop cleanly:", err)
		code = 1
	}
	fmt.Fprintln(os.Stderr, "portal screenshots in", shots)
	return code
}

// build compiles the programs of the stack into dir.
func build(dir string) error {
	out, err := exec.CommandContext(context.Background(), "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	cmd := exec.CommandContext(context.Background(), "go", "build", "-o", dir+string(os.PathSeparator),
		"./cmd/ledgerd", "./cmd/checkout", "./cmd/invoicing", "./cmd/portal", "./cmd/stripe-dev")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	return nil
}
