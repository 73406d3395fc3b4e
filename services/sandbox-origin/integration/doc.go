// Package integration holds the sandbox origin's cross-service tests: the real apps,
// secrets-vault, tenant and gateway binaries (pkg/testkit/stacktest) and a real Chromium
// driven through the DevTools protocol, proving in a browser what the sandbox promises.
package integration
