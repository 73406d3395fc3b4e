// Package e2e holds data-lifecycle's end-to-end tests: the real binaries of every service
// (pkg/testkit/stacktest), real Postgres and JetStream, processes and servers actually
// stopped. It has no code of its own.
package e2e
