// Package vault is the vault's own domain: the tenant key hierarchy (data keys wrapped by the
// region's root key, versioned, cached unwrapped for a bounded time), the ciphertext format
// and its binding to owner, object and field, app secrets, the audit trail of every key use
// and secret access, and crypto-shredding. It imports no gRPC or database driver: storage is
// the Store interface (implemented by package postgres), keyring backups the KeyBackup
// interface (package keybackup), and the root key the kek.Provider interface.
//
// This package is the only place in the suite where an unwrapped tenant key exists.
package vault
