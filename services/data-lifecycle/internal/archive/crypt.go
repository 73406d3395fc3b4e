// Package archive writes and reads export archives: one zip with a manifest.json (what is in
// it, counts, SHA-256 checksums), streamed through an encrypting writer into object storage
// and back through a decrypting reader, so memory never grows with the size of an export.
//
// # Encryption scheme (envelope, segmented)
//
// Only secrets-vault holds tenant keys, and its Encrypt items are bounded (4 MiB, 500 items,
// one audit row per call). Sealing every 1 MiB of a 1 GiB archive with the vault would cost
// 1024 round trips and audit rows and tie throughput to the vault. Instead each archive gets a
// fresh random 256-bit archive key; the vault seals that key under the tenant's key (bound to
// "export/<id>" / "archive-key"), and only the sealed form is stored, in the archive header.
// The archive is then sealed locally with AES-256-GCM in segments (1 MiB by default):
//
//	header  = "FGEXPv1\x00" | uint32 segment size | uint16 len | sealed archive key
//	segment = uint32 len | AES-256-GCM(archive key, nonce = 0^4 | uint64 n,
//	          aad = "forge.export.v1" | export ID | uint64 n | final flag | SHA-256(header))
//
// Each segment is bound to its archive, its position and whether it is the last one, so
// reordering, dropping, duplicating or splicing segments fails, and so does truncation (the
// reader demands a final segment and nothing after it). The header is bound into every
// segment. Nonces never repeat: the key is fresh per archive (per attempt) and n counts up.
// Crypto-shredding still holds: once the tenant's keys are destroyed, the sealed archive key
// cannot be opened, so neither can the archive, wherever a copy of it is.
package archive

import (
	"bufio"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Binding names what a sealed value belongs to (the vault's associated data).
type Binding struct {
	Object string
	Field  string
}

// KeySealer seals and opens an archive key under the tenant's key. The workflow implements it
// with secrets-vault's CryptoService (purpose EXPORT, the owner in the context).
type KeySealer interface {
	Seal(ctx context.Context, b Binding, plaintext []byte) ([]byte, error)
	Open(ctx context.Context, b Binding, ciphertext []byte) ([]byte, error)
}

const (
	magic = "FGEXPv1\x00"
	// DefaultSegmentSize is the plaintext size of every segment but the last.
	DefaultSegmentSize = 1 << 20
	maxSegmentSize     = 16 << 20
	aadPrefix          = "forge.export.v1"
	keySize            = 32
	maxSealedKey       = 4096
)

// ErrCorrupt is returned for an archive that does not decrypt: tampered, truncated,
// reordered, bound to another export, or its key cannot be opened.
var ErrCorrupt = errors.New("archive: corrupt or not this export's archive")

// KeyBinding is the binding of an export's sealed archive key.
func KeyBinding(exportID string) Binding {
	return Binding{Object: "export/" + exportID, Field: "archive-key"}
}

// EncryptingWriter seals everything written to it, segment by segment, into w.
type EncryptingWriter struct {
	w          io.Writer
	aead       cipher.AEAD
	exportID   string
	headerHash [32]byte
	buf        []byte
	out        []byte
	n          uint64
	closed     bool
	err        error
	written    int64
}

// NewEncryptingWriter makes a fresh archive key, has sealer seal it, and writes the header.
func NewEncryptingWriter(ctx context.Context, w io.Writer, sealer KeySealer, exportID string, segmentSize int) (*EncryptingWriter, error) {
	if segmentSize <= 0 {
		segmentSize = DefaultSegmentSize
	}
	if segmentSize > maxSegmentSize {
		return nil, fmt.Errorf("archive: segment size %d > %d", segmentSize, maxSegmentSize)
	}
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("archive: key: %w", err)
	}
	defer clear(key)
	sealed, err := sealer.Seal(ctx, KeyBinding(exportID), key)
	if err != nil {
		return nil, fmt.Errorf("archive: seal key: %w", err)
	}
	if len(sealed) == 0 || len(sealed) > maxSealedKey {
		return nil, fmt.Errorf("archive: sealed key of %d bytes", len(sealed))
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	header := make([]byte, 0, len(magic)+6+len(sealed))
	header = append(header, magic...)
	header = binary.BigEndian.AppendUint32(header, uint32(segmentSize))
	header = binary.BigEndian.AppendUint16(header, uint16(len(sealed)))
	header = append(header, sealed...)
	if _, err := w.Write(header); err != nil {
		return nil, fmt.Errorf("archive: write header: %w", err)
	}
	return &EncryptingWriter{
		w: w, aead: aead, exportID: exportID, headerHash: sha256.Sum256(header),
		buf:     make([]byte, 0, segmentSize),
		out:     make([]byte, 4, 4+segmentSize+aead.Overhead()),
		written: int64(len(header)),
	}, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	return cipher.NewGCM(block)
}

func segmentAAD(exportID string, n uint64, final bool, headerHash [32]byte) []byte {
	aad := make([]byte, 0, len(aadPrefix)+len(exportID)+8+1+32)
	aad = append(aad, aadPrefix...)
	aad = append(aad, exportID...)
	aad = binary.BigEndian.AppendUint64(aad, n)
	if final {
		aad = append(aad, 1)
	} else {
		aad = append(aad, 0)
	}
	return append(aad, headerHash[:]...)
}

func nonce(n uint64) []byte {
	nc := make([]byte, 12)
	binary.BigEndian.PutUint64(nc[4:], n)
	return nc
}

// Write buffers p and seals every full segment.
func (e *EncryptingWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.closed {
		return 0, errors.New("archive: write after close")
	}
	total := len(p)
	for len(p) > 0 {
		room := cap(e.buf) - len(e.buf)
		k := min(room, len(p))
		e.buf = append(e.buf, p[:k]...)
		p = p[k:]
		if len(e.buf) == cap(e.buf) && len(p) > 0 {
			// A full segment with more to come is not the last: seal it now.
			if err := e.flush(false); err != nil {
				return total - len(p), err
			}
		}
	}
	return total, nil
}

func (e *EncryptingWriter) flush(final bool) error {
	out := e.aead.Seal(e.out[:4], nonce(e.n), e.buf, segmentAAD(e.exportID, e.n, final, e.headerHash))
	binary.BigEndian.PutUint32(out[:4], uint32(len(out)-4))
	if _, err := e.w.Write(out); err != nil {
		e.err = fmt.Errorf("archive: write segment: %w", err)
		return e.err
	}
	e.written += int64(len(out))
	e.n++
	e.buf = e.buf[:0]
	return nil
}

// Close seals the last segment (possibly empty) with the final flag. It does not close the
// underlying writer.
func (e *EncryptingWriter) Close() error {
	if e.err != nil {
		return e.err
	}
	if e.closed {
		return nil
	}
	e.closed = true
	return e.flush(true)
}

// Written is the number of bytes written to the underlying writer so far.
func (e *EncryptingWriter) Written() int64 { return e.written }

// Segments is the number of segments sealed so far.
func (e *EncryptingWriter) Segments() uint64 { return e.n }

// DecryptingReader opens an archive written by EncryptingWriter.
type DecryptingReader struct {
	r          *bufio.Reader
	aead       cipher.AEAD
	exportID   string
	headerHash [32]byte
	maxSeg     int
	in         []byte
	pbuf       []byte
	plain      []byte
	pos        int
	n          uint64
	done       bool
	err        error
}

// NewDecryptingReader reads the header and has opener open the archive key.
func NewDecryptingReader(ctx context.Context, r io.Reader, opener KeySealer, exportID string) (*DecryptingReader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	fixed := make([]byte, len(magic)+6)
	if _, err := io.ReadFull(br, fixed); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrCorrupt, err)
	}
	if string(fixed[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: not an export archive", ErrCorrupt)
	}
	segSize := int(binary.BigEndian.Uint32(fixed[len(magic):]))
	keyLen := int(binary.BigEndian.Uint16(fixed[len(magic)+4:]))
	if segSize <= 0 || segSize > maxSegmentSize || keyLen == 0 || keyLen > maxSealedKey {
		return nil, fmt.Errorf("%w: header fields", ErrCorrupt)
	}
	sealed := make([]byte, keyLen)
	if _, err := io.ReadFull(br, sealed); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrCorrupt, err)
	}
	key, err := opener.Open(ctx, KeyBinding(exportID), sealed)
	if err != nil {
		return nil, fmt.Errorf("archive: open key: %w", err)
	}
	defer clear(key)
	if len(key) != keySize {
		return nil, fmt.Errorf("%w: archive key size", ErrCorrupt)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write(fixed)
	h.Write(sealed)
	d := &DecryptingReader{r: br, aead: aead, exportID: exportID, maxSeg: segSize + aead.Overhead()}
	copy(d.headerHash[:], h.Sum(nil))
	d.in = make([]byte, d.maxSeg)
	d.pbuf = make([]byte, 0, segSize)
	return d, nil
}

// Read returns plaintext; it fails with ErrCorrupt as soon as a segment does not open.
func (d *DecryptingReader) Read(p []byte) (int, error) {
	for d.pos == len(d.plain) {
		if d.err != nil {
			return 0, d.err
		}
		if d.done {
			return 0, io.EOF
		}
		d.err = d.next()
	}
	k := copy(p, d.plain[d.pos:])
	d.pos += k
	return k, nil
}

func (d *DecryptingReader) next() error {
	var lenBuf [4]byte
	if _, err := io.ReadFull(d.r, lenBuf[:]); err != nil {
		// EOF before a final segment: truncated.
		return fmt.Errorf("%w: truncated", ErrCorrupt)
	}
	l := int(binary.BigEndian.Uint32(lenBuf[:]))
	if l < d.aead.Overhead() || l > d.maxSeg {
		return fmt.Errorf("%w: segment length", ErrCorrupt)
	}
	in := d.in[:l]
	if _, err := io.ReadFull(d.r, in); err != nil {
		return fmt.Errorf("%w: truncated", ErrCorrupt)
	}
	// Try as a middle segment, then as the last: the flag is authenticated, not trusted.
	plain, err := d.aead.Open(d.pbuf[:0], nonce(d.n), in, segmentAAD(d.exportID, d.n, false, d.headerHash))
	if err != nil {
		plain, err = d.aead.Open(d.pbuf[:0], nonce(d.n), in, segmentAAD(d.exportID, d.n, true, d.headerHash))
		if err != nil {
			return fmt.Errorf("%w: segment %d", ErrCorrupt, d.n)
		}
		// Nothing may follow the final segment.
		if _, err := d.r.ReadByte(); err != io.EOF {
			return fmt.Errorf("%w: data after the final segment", ErrCorrupt)
		}
		d.done = true
	}
	d.plain, d.pos = plain, 0
	d.n++
	return nil
}
