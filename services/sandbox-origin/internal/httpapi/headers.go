package httpapi

import (
	"net/http"
	"strings"
)

// securityHeaders are set on every response, before anything else runs, so 404s, redirects,
// errors and proxied answers carry them too.
//
//   - Content-Security-Policy: everything from the app's own origin only; inline script and
//     style allowed (generated single-page apps use them), no eval, no plugins; connect-src
//     'self', so the only way out is the app's own secret proxy; frame-ancestors the console
//     alone; and a CSP sandbox without allow-top-navigation, so an app in the console's iframe
//     cannot navigate the console away (to a look-alike sign-in page, say).
//   - Cross-Origin-Resource-Policy: same-origin: no other site (another app included) can
//     embed or read an app's files as subresources.
//   - Cross-Origin-Opener-Policy: same-origin. It has no effect inside an iframe (COOP applies
//     to top-level documents), so it costs the embedded app nothing; when an app is opened in
//     its own tab it severs the window.opener link with whatever opened it.
//   - Origin-Agent-Cluster: ?1 keeps each app in its own agent cluster (no document.domain
//     relaxation between sibling app origins, a process of its own where the browser can).
//   - Referrer-Policy: no-referrer: app URLs carry tickets and tokens on first load, and
//     nothing of the app's URL should reach an upstream or another site.
func securityHeaders(consoleOrigin string) http.Header {
	csp := strings.Join([]string{
		"default-src 'self'",
		"script-src 'self' 'unsafe-inline'",
		"style-src 'self' 'unsafe-inline'",
		"img-src 'self' data: blob:",
		"font-src 'self' data:",
		"media-src 'self' data: blob:",
		"connect-src 'self'",
		"worker-src 'self' blob:",
		"manifest-src 'self'",
		"frame-src 'self'",
		"object-src 'none'",
		"base-uri 'none'",
		"form-action 'self'",
		"frame-ancestors " + consoleOrigin,
		"sandbox allow-scripts allow-same-origin allow-forms allow-modals allow-popups allow-downloads",
	}, "; ")
	perms := strings.Join([]string{
		"accelerometer=()", "ambient-light-sensor=()", "autoplay=()", "battery=()", "bluetooth=()",
		"camera=()", "display-capture=()", "document-domain=()", "encrypted-media=()",
		"fullscreen=(self)", "geolocation=()", "gyroscope=()", "hid=()", "idle-detection=()",
		"local-fonts=()", "magnetometer=()", "microphone=()", "midi=()", "payment=()",
		"picture-in-picture=()", "publickey-credentials-create=()", "publickey-credentials-get=()",
		"screen-wake-lock=()", "serial=()", "storage-access=()", "usb=()", "web-share=()",
		"xr-spatial-tracking=()", "clipboard-read=()", "clipboard-write=(self)",
	}, ", ")
	h := http.Header{}
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Origin-Agent-Cluster", "?1")
	h.Set("Permissions-Policy", perms)
	h.Set("Strict-Transport-Security", "max-age=31536000")
	// Until a handler says otherwise (files: no-cache; errors: no-store).
	h.Set("Cache-Control", "no-store")
	return h
}

// apply copies the headers into h. The value slices are shared, never modified.
func apply(dst, src http.Header) {
	for k, v := range src {
		dst[k] = v
	}
}
