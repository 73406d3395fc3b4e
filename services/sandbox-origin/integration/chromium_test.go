package integration_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath finds Debian's Chromium, installing it with apt-get when the test runs as root
// on a machine without it (a fresh CI machine), and fails with what to do otherwise.
func chromiumPath(tb testing.TB) string {
	tb.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Geteuid() != 0 {
		tb.Fatal("this test drives Chromium and it is not installed: run `apt-get update && apt-get install -y chromium` as root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("installing chromium with apt-get failed: %v\n%s", err, out)
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		tb.Fatal("apt-get installed chromium but it is not on PATH")
	}
	return p
}

// browser starts a headless Chromium with the flags TOOLING.md lists. The sandbox's and the
// console's certificates come from throwaway test CAs, hence --ignore-certificate-errors; the
// origins stay https, so Secure and __Host- cookies behave as in production.
func browser(tb testing.TB) context.Context {
	tb.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(tb)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(tb.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	tb.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("starting chromium: %v", err)
	}
	return ctx
}
