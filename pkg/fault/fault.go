// Package fault is the vocabulary of errors that domain code returns: a small set of kinds
// (not found, invalid argument, failed precondition, ...) with a message that is safe to show
// to the caller. It has no transport imports, so domain packages can use it freely; the errmap
// package turns these errors (and Postgres errors) into gRPC statuses in one place.
//
// A fault's message is shown to clients. Never put a secret, a token, a stack or a driver's
// error text into it; wrap the cause instead (it is logged, never sent).
package fault

import (
	"errors"
	"fmt"
)

// Kind classifies a fault. Each kind maps to exactly one gRPC code and HTTP status.
type Kind int

// The kinds of fault.
const (
	// KindUnknown is not a fault: errors of this kind are internal and are masked.
	KindUnknown Kind = iota
	KindInvalidArgument
	KindNotFound
	KindAlreadyExists
	KindFailedPrecondition
	KindPermissionDenied
	KindUnauthenticated
	KindResourceExhausted
	KindAborted
	KindUnavailable
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case KindInvalidArgument:
		return "invalid_argument"
	case KindNotFound:
		return "not_found"
	case KindAlreadyExists:
		return "already_exists"
	case KindFailedPrecondition:
		return "failed_precondition"
	case KindPermissionDenied:
		return "permission_denied"
	case KindUnauthenticated:
		return "unauthenticated"
	case KindResourceExhausted:
		return "resource_exhausted"
	case KindAborted:
		return "aborted"
	case KindUnavailable:
		return "unavailable"
	}
	return "unknown"
}

// FieldViolation names one invalid field of a request and why it is invalid.
type FieldViolation struct {
	Field       string
	Description string
}

// Error is a fault: a kind, a client-safe message, optional field violations, and an
// optional cause that is logged but never shown.
type Error struct {
	Kind       Kind
	Message    string
	Violations []FieldViolation
	// Reason is an optional stable machine-readable reason (UPPER_SNAKE), sent as ErrorInfo.
	Reason string
	// Metadata is optional client-safe detail sent with the reason (for example the home
	// region a request must go to).
	Metadata map[string]string
	cause    error
}

// Error returns the client-safe message, prefixed by the kind.
func (e *Error) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Kind, e.Message, e.cause)
	}
	return fmt.Sprintf("%s: %s", e.Kind, e.Message)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.cause }

// Wrap returns a copy of e carrying cause (logged, never sent to the client).
func (e *Error) Wrap(cause error) *Error {
	c := *e
	c.cause = cause
	return &c
}

// WithReason returns a copy of e with a stable reason and client-safe metadata.
func (e *Error) WithReason(reason string, metadata map[string]string) *Error {
	c := *e
	c.Reason = reason
	c.Metadata = metadata
	return &c
}

func newf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// InvalidArgument is a request that is wrong in itself (and changes nothing).
func InvalidArgument(format string, args ...any) *Error {
	return newf(KindInvalidArgument, format, args...)
}

// InvalidField is an InvalidArgument naming the offending field.
func InvalidField(field, description string) *Error {
	return &Error{
		Kind:       KindInvalidArgument,
		Message:    fmt.Sprintf("invalid %s: %s", field, description),
		Violations: []FieldViolation{{Field: field, Description: description}},
	}
}

// NotFound is a missing resource, and equally a resource of another tenant: the two must be
// indistinguishable, so the message must not say which.
func NotFound(format string, args ...any) *Error { return newf(KindNotFound, format, args...) }

// AlreadyExists is a create that collides with an existing resource of the same owner.
func AlreadyExists(format string, args ...any) *Error {
	return newf(KindAlreadyExists, format, args...)
}

// FailedPrecondition is a valid request that the current state refuses (for example a
// tenant homed in another region, or a plan that does not allow the feature).
func FailedPrecondition(format string, args ...any) *Error {
	return newf(KindFailedPrecondition, format, args...)
}

// PermissionDenied is a known caller that may not do this.
func PermissionDenied(format string, args ...any) *Error {
	return newf(KindPermissionDenied, format, args...)
}

// Unauthenticated is a caller whose identity is missing or not verified.
func Unauthenticated(format string, args ...any) *Error {
	return newf(KindUnauthenticated, format, args...)
}

// ResourceExhausted is a quota, rate or size limit.
func ResourceExhausted(format string, args ...any) *Error {
	return newf(KindResourceExhausted, format, args...)
}

// Aborted is a conflict the caller may retry (for example a concurrent update).
func Aborted(format string, args ...any) *Error { return newf(KindAborted, format, args...) }

// Unavailable is a dependency that is down for now; the caller may retry.
func Unavailable(format string, args ...any) *Error {
	return newf(KindUnavailable, format, args...)
}

// KindOf returns the kind of the first fault in err's chain, or KindUnknown.
func KindOf(err error) Kind {
	var f *Error
	if errors.As(err, &f) {
		return f.Kind
	}
	return KindUnknown
}

// Is reports whether err is a fault of kind k.
func Is(err error, k Kind) bool { return err != nil && KindOf(err) == k }
