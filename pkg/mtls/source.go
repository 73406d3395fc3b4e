// Package mtls puts mutual TLS on every hop between the suite's workloads. A Source holds a
// workload's certificate, key and trust bundle, re-reads them from disk when they rotate (no
// restart), and builds the server and client TLS configurations and gRPC credentials from
// them: TLS 1.3 only, client certificates required and verified against the current bundle,
// and the peer's SPIFFE ID checked during the handshake, so a wrong peer is refused before any
// byte of a request is read.
//
// Which workload may call which method is not decided here: the authorization interceptor
// reads the verified identity (workload.FromPeer) and consults its table.
package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/forgeapps/backbone/pkg/workload"
)

// DefaultCheckInterval is how often, at most, a Source looks at its files' modification time
// and size. Handshakes trigger the check, so an idle service does no I/O at all.
const DefaultCheckInterval = time.Second

// Files names the PEM files of a workload: its certificate (leaf first, intermediates may
// follow), its private key, and the CA bundle it trusts.
type Files struct {
	CertFile string
	KeyFile  string
	CAFile   string
}

// Option configures a Source.
type Option func(*options)

type options struct {
	interval time.Duration
	now      func() time.Time
}

// WithCheckInterval sets how often, at most, handshakes look for changed files. Zero checks
// on every handshake.
func WithCheckInterval(d time.Duration) Option {
	return func(o *options) { o.interval = d }
}

// WithClock injects the clock used for the check interval and for validating a freshly loaded
// certificate, so tests can step time instead of sleeping.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// material is one consistent generation of certificate, key and trust bundle. It is never
// modified after it is published, so handshakes read it without locks.
type material struct {
	cert *tls.Certificate // Leaf is set
	pool *x509.CertPool   // nil for a serving-only source
	id   workload.ID      // zero for a serving-only source
}

// fileStamp is what decides whether a file changed: cheap to read. The file identity
// (inode on Unix) catches a rename over the file (how Kubernetes and devca.WriteDir rotate)
// even when it lands within the file system's timestamp granularity and keeps the size.
type fileStamp struct {
	info os.FileInfo
}

func (a fileStamp) same(b fileStamp) bool {
	if a.info == nil || b.info == nil {
		return a.info == nil && b.info == nil
	}
	return a.info.ModTime().Equal(b.info.ModTime()) && a.info.Size() == b.info.Size() && os.SameFile(a.info, b.info)
}

type fileStamps [3]fileStamp

func (a fileStamps) same(b fileStamps) bool {
	return a[0].same(b[0]) && a[1].same(b[1]) && a[2].same(b[2])
}

// Source is a workload's TLS material, reloaded from disk when the files change. Its methods
// are safe for concurrent use.
type Source struct {
	files       Files
	trustDomain string // empty for a serving-only source
	logger      *slog.Logger
	interval    time.Duration
	now         func() time.Time

	current atomic.Pointer[material]

	// mu serializes file checks and reloads, so concurrent handshakes read the files once.
	mu        sync.Mutex
	lastCheck time.Time
	stamps    fileStamps
}

// NewSource loads files and returns a Source for a workload of trustDomain. The certificate
// must carry exactly one SPIFFE ID in trustDomain and chain to the bundle in CAFile, so that a
// misconfigured service fails at start instead of at its first call. logger receives reload
// failures (the previous material stays in use); nil discards them.
func NewSource(files Files, trustDomain string, logger *slog.Logger, opts ...Option) (*Source, error) {
	if files.CertFile == "" || files.KeyFile == "" || files.CAFile == "" {
		return nil, errors.New("mtls: certificate, key and CA files are all required")
	}
	if trustDomain == "" {
		return nil, errors.New("mtls: empty trust domain")
	}
	s := newSource(files, trustDomain, logger, opts)
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// NewStaticSource builds a Source from in-memory PEM that never reloads: for tests, and for
// material that does not live in files.
func NewStaticSource(certPEM, keyPEM, caPEM []byte, trustDomain string, opts ...Option) (*Source, error) {
	if trustDomain == "" {
		return nil, errors.New("mtls: empty trust domain")
	}
	s := newSource(Files{}, trustDomain, nil, opts)
	m, err := s.parse(certPEM, keyPEM, caPEM)
	if err != nil {
		return nil, err
	}
	s.current.Store(m)
	return s, nil
}

func newSource(files Files, trustDomain string, logger *slog.Logger, opts []Option) *Source {
	o := options{interval: DefaultCheckInterval, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Source{
		files:       files,
		trustDomain: trustDomain,
		logger:      logger,
		interval:    o.interval,
		now:         o.now,
	}
}

// Identity is the workload ID of the current certificate; zero for a serving-only source.
func (s *Source) Identity() workload.ID { return s.current.Load().id }

// Reload re-reads the files now, whatever the check interval and the files' stamps say. On
// error the previous material stays in use and the error is returned (not logged).
func (s *Source) Reload() error {
	if s.files.CertFile == "" {
		return errors.New("mtls: static source has no files to reload")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastCheck = s.now()
	_, err := s.reloadLocked()
	return err
}

// material returns the current material, first reloading it when the check interval has
// passed and a file changed. Handshakes call it; a failure is logged and the previous
// material is served.
func (s *Source) material() *material {
	if s.files.CertFile != "" {
		s.maybeReload()
	}
	return s.current.Load()
}

func (s *Source) maybeReload() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if !s.lastCheck.IsZero() && now.Sub(s.lastCheck) < s.interval {
		return
	}
	s.lastCheck = now
	stamps, err := s.stat()
	if err != nil {
		s.logger.Error("mtls: cannot stat certificate files, keeping current material",
			slog.String("cert_file", s.files.CertFile), slog.Any("error", err))
		return
	}
	if stamps.same(s.stamps) {
		return
	}
	m, err := s.reloadLocked()
	if err != nil {
		s.logger.Error("mtls: reloading certificate files failed, keeping current material",
			slog.String("cert_file", s.files.CertFile), slog.Any("error", err))
		return
	}
	s.logger.Info("mtls: certificate reloaded",
		slog.String("workload", m.id.String()),
		slog.String("serial", m.cert.Leaf.SerialNumber.Text(16)),
		slog.Time("not_after", m.cert.Leaf.NotAfter))
}

// reloadLocked reads and parses the files and publishes the result. The stamps are taken
// before reading and kept even when parsing fails: a broken file is reported once, and the
// next write to any of the files triggers another attempt. s.mu must be held.
func (s *Source) reloadLocked() (*material, error) {
	stamps, err := s.stat()
	if err != nil {
		return nil, err
	}
	s.stamps = stamps
	certPEM, err := os.ReadFile(s.files.CertFile)
	if err != nil {
		return nil, fmt.Errorf("mtls: read certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(s.files.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("mtls: read key: %w", err)
	}
	var caPEM []byte
	if s.files.CAFile != "" {
		if caPEM, err = os.ReadFile(s.files.CAFile); err != nil {
			return nil, fmt.Errorf("mtls: read CA bundle: %w", err)
		}
	}
	m, err := s.parse(certPEM, keyPEM, caPEM)
	if err != nil {
		return nil, err
	}
	s.current.Store(m)
	return m, nil
}

func (s *Source) stat() (fileStamps, error) {
	var stamps fileStamps
	for i, name := range []string{s.files.CertFile, s.files.KeyFile, s.files.CAFile} {
		if name == "" {
			continue
		}
		info, err := os.Stat(name)
		if err != nil {
			return stamps, fmt.Errorf("mtls: %w", err)
		}
		stamps[i] = fileStamp{info: info}
	}
	return stamps, nil
}

// parse checks one generation of material as a whole. A workload certificate must name one
// workload of our trust domain and chain to the bundle at the current time: a certificate
// rotated before its bundle (or the other way round) is refused, and the previous consistent
// generation keeps serving until the rest of the files land.
func (s *Source) parse(certPEM, keyPEM, caPEM []byte) (*material, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("mtls: certificate and key: %w", err)
	}
	// Go 1.23+ fills Leaf; checked so a change of that default cannot make Leaf nil.
	if cert.Leaf == nil {
		return nil, errors.New("mtls: certificate has no parsed leaf")
	}
	m := &material{cert: &cert}
	if s.trustDomain == "" {
		return m, nil
	}

	m.pool = x509.NewCertPool()
	if !m.pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("mtls: CA bundle holds no certificate")
	}
	id, err := workload.FromCertificate(cert.Leaf)
	if err != nil {
		return nil, fmt.Errorf("mtls: own certificate: %w", err)
	}
	if id.TrustDomain() != s.trustDomain {
		return nil, fmt.Errorf("mtls: own certificate is %s, not in trust domain %q", id, s.trustDomain)
	}
	intermediates := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("mtls: intermediate certificate: %w", err)
		}
		intermediates.AddCert(c)
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{
		Roots:         m.pool,
		Intermediates: intermediates,
		CurrentTime:   s.now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, fmt.Errorf("mtls: own certificate does not verify against the CA bundle: %w", err)
	}
	m.id = id
	return m, nil
}
