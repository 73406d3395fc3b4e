// Package integration holds the gateway's tests against the real services: the gateway and
// tenant binaries built from this repository and run by pkg/testkit/stacktest (their own
// databases, an in-process JetStream, fresh certificates), driven over HTTPS the way a
// browser or curl drives them. The tests live in _test files; this file only says why the
// package exists.
package integration
