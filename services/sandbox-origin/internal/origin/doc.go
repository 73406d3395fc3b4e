// Package origin holds the rules of the sandbox origin that need no network or database: which
// Host names an app (one origin per app, nothing else accepted), what a view ticket and an
// origin cookie are and how they are checked, who may open an app, and the content type of a
// file. Everything browser-facing in this service decides through it, so each rule is written
// and tested once.
package origin
