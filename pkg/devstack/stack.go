package devstack

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/devca"
	"github.com/forgeapps/backbone/pkg/events/embedded"
	"github.com/forgeapps/backbone/pkg/grpcclient"
	"github.com/forgeapps/backbone/pkg/mtls"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/workload"
)

// Config is what Start needs.
type Config struct {
	// Root is the repository root; by default state goes to Root/.dev and binaries come from
	// Root/bin.
	Root string
	// StateDir and BinDir override those defaults (tests use temporary directories).
	StateDir, BinDir string
	// Services are the services to run (those that have a main package), any order.
	Services []string
	Region   owner.Region
	// AdminURL is a PostgreSQL administrator URL (DATABASE_URL); empty finds or starts one.
	AdminURL string
	// NATSURL is an external NATS (NATS_URL); empty runs an embedded JetStream server.
	NATSURL string
	// RandomPorts picks free loopback ports instead of the fixed development ones, and
	// DatabaseSuffix names the databases apart, so several stacks can run side by side.
	RandomPorts    bool
	DatabaseSuffix string
	// Env adds variables for one service (tests tune timeouts this way).
	Env map[string][]string
	// DevMode turns on development conveniences (the development identity provider).
	DevMode bool
	Stdout  io.Writer
	Logger  *slog.Logger
}

// Stack is a running local suite.
type Stack struct {
	cfg      Config
	state    string
	certs    string
	specs    map[string]ServiceSpec
	env      map[string][]string
	procs    map[string]*process
	order    []string
	cleanups []func()
	// AdminURL is the PostgreSQL administrator URL the stack uses.
	AdminURL string
	// NATSURL is the NATS the services use.
	NATSURL string
	// GatewayURL and SandboxURL are set when those services run.
	GatewayURL, SandboxURL string
}

type process struct {
	name string
	cmd  *exec.Cmd
	done chan error
}

// Up starts everything and blocks until ctx ends, then stops everything in reverse order.
func Up(ctx context.Context, cfg Config) error {
	cfg.DevMode = true
	s, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Stop()
	fmt.Fprintf(cfg.Stdout, "\nforge is up in %s. Ctrl-C stops everything.\n", cfg.Region)
	if s.GatewayURL != "" {
		fmt.Fprintf(cfg.Stdout, "  gateway (JSON API): %s   OpenAPI: %s/openapi/\n", s.GatewayURL, s.GatewayURL)
		fmt.Fprintf(cfg.Stdout, "  try:  curl --cacert .dev/certs/ca.pem %s/v1/discover\n", s.GatewayURL)
		fmt.Fprintf(cfg.Stdout, "  the README's quick start signs in through the development identity provider.\n")
	}
	if s.SandboxURL != "" {
		fmt.Fprintf(cfg.Stdout, "  apps: %s (one origin per app)\n", s.SandboxURL)
	}
	return s.Wait(ctx)
}

// Start brings the stack up and returns once every service reports SERVING.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Stdout == nil {
		cfg.Stdout = io.Discard
	}
	if cfg.Region == "" {
		cfg.Region = owner.DefaultRegion
	}
	if cfg.StateDir == "" {
		cfg.StateDir = filepath.Join(cfg.Root, ".dev")
	}
	if cfg.BinDir == "" {
		cfg.BinDir = filepath.Join(cfg.Root, "bin")
	}
	s := &Stack{cfg: cfg, state: cfg.StateDir, specs: map[string]ServiceSpec{}, env: map[string][]string{}, procs: map[string]*process{}}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	if err := os.MkdirAll(s.state, 0o755); err != nil {
		return nil, err
	}
	s.certs = filepath.Join(s.state, "certs")
	names := append(workload.Services(), workload.Billing, workload.Builder)
	if err := devca.WriteDir(s.certs, workload.DefaultTrustDomain, names, devca.DefaultValidity); err != nil {
		return nil, fmt.Errorf("dev certificates: %w", err)
	}
	kek, err := ensureKeyFile(filepath.Join(s.state, "keys"), "kek-"+cfg.Region.String())
	if err != nil {
		return nil, err
	}
	// The sandbox origin seals its per-app cookies with this key; a file (rather than a key
	// made at each start) keeps them valid across restarts of the local stack.
	grantKey, err := ensureKeyFile(filepath.Join(s.state, "keys"), "sandbox-grant")
	if err != nil {
		return nil, err
	}

	deps := Deps{Logger: cfg.Logger, StateDir: s.state}
	if s.AdminURL, err = s.postgres(ctx, deps); err != nil {
		return nil, err
	}
	if s.NATSURL, err = s.nats(); err != nil {
		return nil, err
	}

	// Ports first: every service learns every other one's address.
	var ports portPool
	for _, sp := range Specs() {
		if !slices.Contains(cfg.Services, sp.Name) {
			continue
		}
		if cfg.RandomPorts {
			if sp, err = ports.assign(sp); err != nil {
				ports.release()
				return nil, err
			}
		}
		s.specs[sp.Name] = sp
		s.order = append(s.order, sp.Name)
	}
	ports.release()
	common := []string{
		"FORGE_REGION=" + cfg.Region.String(),
		"FORGE_TRUST_DOMAIN=" + workload.DefaultTrustDomain,
		"FORGE_TLS_CA=" + filepath.Join(s.certs, "ca.pem"),
		"NATS_URL=" + s.NATSURL,
		"FORGE_EDGE_CERT=" + filepath.Join(s.certs, devca.EdgeName+".pem"),
		"FORGE_EDGE_KEY=" + filepath.Join(s.certs, devca.EdgeName+"-key.pem"),
		"FORGE_KEY_PROVIDER=file://" + kek,
		"FORGE_KEYRING_BACKUP_URL=file://" + filepath.Join(s.state, "blob", "keyring-backup"),
		"FORGE_SANDBOX_GRANT_KEY_FILE=" + grantKey,
	}
	if cfg.DevMode {
		common = append(common, "FORGE_DEV_MODE=1")
	}
	if gw, ok := s.specs[workload.Gateway]; ok {
		common = append(common, fmt.Sprintf("FORGE_CONSOLE_ORIGIN=https://localhost:%d", gw.HTTPPort))
	}
	if sb, ok := s.specs[workload.SandboxOrigin]; ok {
		common = append(common, fmt.Sprintf("FORGE_SANDBOX_DOMAIN=apps.localhost:%d", sb.HTTPPort))
	}
	for _, name := range s.order {
		if v := AddrEnv(name); v != "" {
			common = append(common, v+"="+loopback(s.specs[name].GRPCPort))
		}
	}

	for _, name := range s.order {
		sp := s.specs[name]
		env := append(slices.Clone(common),
			"FORGE_GRPC_ADDR="+loopback(sp.GRPCPort),
			"FORGE_HEALTH_ADDR="+loopback(sp.HealthPort),
			"FORGE_TLS_CERT="+filepath.Join(s.certs, sp.Name+".pem"),
			"FORGE_TLS_KEY="+filepath.Join(s.certs, sp.Name+"-key.pem"),
		)
		if sp.HTTPPort != 0 {
			env = append(env, "FORGE_HTTP_ADDR="+loopback(sp.HTTPPort))
		}
		if sp.Blob {
			dir := filepath.Join(s.state, "blob", sp.Name)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, err
			}
			env = append(env, "FORGE_BLOB_URL=file://"+dir)
		}
		if sp.Schema != "" {
			dbSpec := sp.DatabaseSpec(cfg.DatabaseSuffix)
			if err := database.Bootstrap(ctx, s.AdminURL, dbSpec); err != nil {
				return nil, fmt.Errorf("%s: bootstrap database: %w", sp.Name, err)
			}
			migrationURL, runtimeURL, err := dbSpec.URLs(s.AdminURL)
			if err != nil {
				return nil, err
			}
			env = append(env, "DATABASE_URL="+runtimeURL, "MIGRATION_DATABASE_URL="+migrationURL,
				"FORGE_DB_RUNTIME_ROLE="+dbSpec.RuntimeRole)
		} else {
			// The administrator URL must never reach a service.
			env = append(env, "DATABASE_URL=", "MIGRATION_DATABASE_URL=")
		}
		env = append(env, cfg.Env[sp.Name]...)
		s.env[sp.Name] = env
		if sp.Schema != "" {
			if err := s.runOnce(ctx, sp.Name, "migrate"); err != nil {
				return nil, fmt.Errorf("%s: migrate: %w", sp.Name, err)
			}
		}
		if err := s.StartService(ctx, sp.Name); err != nil {
			return nil, err
		}
		switch sp.Name {
		case workload.Gateway:
			s.GatewayURL = fmt.Sprintf("https://localhost:%d", sp.HTTPPort)
		case workload.SandboxOrigin:
			s.SandboxURL = fmt.Sprintf("https://<app>.apps.localhost:%d", sp.HTTPPort)
		}
	}
	return s, nil
}

func (s *Stack) postgres(ctx context.Context, deps Deps) (string, error) {
	url, stop, err := deps.EnsurePostgres(ctx, s.cfg.AdminURL)
	if err != nil {
		return "", err
	}
	s.cleanups = append(s.cleanups, stop)
	if s.cfg.DatabaseSuffix != "" {
		// Test stacks drop what they created.
		s.cleanups = append(s.cleanups, func() { s.dropDatabases(url) })
	}
	return url, nil
}

func (s *Stack) nats() (string, error) {
	if s.cfg.NATSURL != "" {
		return s.cfg.NATSURL, nil
	}
	ns, err := embedded.Start(embedded.Config{Port: -1, StoreDir: filepath.Join(s.state, "nats"), Logger: s.cfg.Logger})
	if err != nil {
		return "", fmt.Errorf("embedded nats: %w", err)
	}
	s.cleanups = append(s.cleanups, ns.Shutdown)
	s.cfg.Logger.Info("embedded NATS JetStream running", "url", ns.ClientURL())
	return ns.ClientURL(), nil
}

func (s *Stack) dropDatabases(adminURL string) {
	for _, name := range s.order {
		sp := s.specs[name]
		if sp.Schema == "" {
			continue
		}
		if err := database.Drop(context.Background(), adminURL, sp.DatabaseSpec(s.cfg.DatabaseSuffix)); err != nil {
			s.cfg.Logger.Warn("dropping a test database failed", "service", name, "error", err)
		}
	}
}

// portPool hands out free loopback ports for a stack, holding each one's listener until
// release: a port closed as soon as it is picked may be picked again by the next call, which
// once gave a service the same port for gRPC and health (and a failed start).
type portPool struct {
	held []net.Listener
}

func (p *portPool) take() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	p.held = append(p.held, l)
	return l.Addr().(*net.TCPAddr).Port, nil
}

// assign gives sp free ports, none shared with anything taken from the pool before.
func (p *portPool) assign(sp ServiceSpec) (ServiceSpec, error) {
	var err error
	if sp.GRPCPort, err = p.take(); err != nil {
		return sp, err
	}
	if sp.HealthPort, err = p.take(); err != nil {
		return sp, err
	}
	if sp.HTTPPort != 0 {
		if sp.HTTPPort, err = p.take(); err != nil {
			return sp, err
		}
	}
	return sp, nil
}

// release closes the held listeners, just before the services bind the ports.
func (p *portPool) release() {
	for _, l := range p.held {
		_ = l.Close()
	}
	p.held = nil
}

// ensureKeyFile creates a random 256-bit key file with mode 0600 if it does not exist.
func ensureKeyFile(dir, name string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, key, 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// Addr returns the gRPC address of a running service.
func (s *Stack) Addr(service string) string { return loopback(s.specs[service].GRPCPort) }

// CertDir is where the stack's CA and workload certificates are.
func (s *Stack) CertDir() string { return s.certs }

func (s *Stack) binary(name string) string { return filepath.Join(s.cfg.BinDir, name) }

func (s *Stack) runOnce(ctx context.Context, name, arg string) error {
	cmd := exec.CommandContext(ctx, s.binary(name), arg)
	cmd.Env = append(os.Environ(), s.env[name]...)
	w := s.prefixed(name)
	defer w.Close()
	cmd.Stdout, cmd.Stderr = w, w
	return cmd.Run()
}

// StartService starts (or restarts after StopService) one service and waits until it serves.
func (s *Stack) StartService(ctx context.Context, name string) error {
	if p, ok := s.procs[name]; ok && p != nil {
		return fmt.Errorf("%s is already running", name)
	}
	cmd := exec.Command(s.binary(name), "serve")
	cmd.Env = append(os.Environ(), s.env[name]...)
	w := s.prefixed(name)
	cmd.Stdout, cmd.Stderr = w, w
	// Its own process group: the launcher alone receives the terminal's Ctrl-C and stops the
	// services in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan error, 1)}
	go func() {
		p.done <- cmd.Wait()
		_ = w.Close()
	}()
	s.procs[name] = p
	return s.waitServing(ctx, p)
}

// StopService stops one service: SIGTERM (graceful) or SIGKILL (a crash, for fault tests).
func (s *Stack) StopService(name string, kill bool) {
	p, ok := s.procs[name]
	if !ok || p == nil {
		return
	}
	if kill {
		_ = p.cmd.Process.Kill()
	} else {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	delete(s.procs, name)
}

// prefixed writes a process's output to Stdout line by line with its name in front.
func (s *Stack) prefixed(name string) io.WriteCloser {
	r, w := io.Pipe()
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(s.cfg.Stdout, "%-15s | %s\n", name, sc.Text())
		}
		_, _ = io.Copy(io.Discard, r)
	}()
	return w
}

// ClientSource returns an mTLS source holding the certificate of workload name, to call the
// stack's services as that workload.
func (s *Stack) ClientSource(name string) (*mtls.Source, error) {
	return mtls.NewSource(mtls.Files{
		CertFile: filepath.Join(s.certs, name+".pem"),
		KeyFile:  filepath.Join(s.certs, name+"-key.pem"),
		CAFile:   filepath.Join(s.certs, "ca.pem"),
	}, workload.DefaultTrustDomain, s.cfg.Logger)
}

// waitServing polls the service's health over mTLS (as the gateway workload; health is open
// to every verified workload) until it reports SERVING.
func (s *Stack) waitServing(ctx context.Context, p *process) error {
	src, err := s.ClientSource(workload.Gateway)
	if err != nil {
		return err
	}
	cc, err := grpcclient.Dial(s.Addr(p.name), src.ClientCredentials(workload.Must(workload.DefaultTrustDomain, p.name)), nil)
	if err != nil {
		return err
	}
	defer cc.Close()
	client := healthpb.NewHealthClient(cc)
	deadline := time.Now().Add(90 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := client.Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		select {
		case err := <-p.done:
			p.done <- err
			return fmt.Errorf("%s exited during start-up: %v", p.name, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not become healthy: %v", p.name, err)
		}
	}
}

// Wait blocks until ctx ends or a service exits on its own (which is an error).
func (s *Stack) Wait(ctx context.Context) error {
	exited := make(chan string, len(s.procs))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for _, p := range s.procs {
		wg.Add(1)
		go func(p *process) {
			defer wg.Done()
			select {
			case err := <-p.done:
				p.done <- err
				exited <- fmt.Sprintf("%s exited: %v", p.name, err)
			case <-stop:
			}
		}(p)
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	select {
	case <-ctx.Done():
		return nil
	case msg := <-exited:
		return errors.New(msg)
	}
}

// Stop stops the services in reverse start order, then the dependencies the stack started.
func (s *Stack) Stop() {
	for i := len(s.order) - 1; i >= 0; i-- {
		s.StopService(s.order[i], false)
	}
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
	s.cleanups = nil
}

// Services lists the running services in start order.
func (s *Stack) Services() []string {
	var out []string
	for _, n := range s.order {
		if s.procs[n] != nil {
			out = append(out, n)
		}
	}
	return out
}

// DatabaseURLs returns the migration-role and runtime-role URLs of a service's database, for
// tests that inspect rows.
func (s *Stack) DatabaseURLs(service string) (migrationURL, runtimeURL string, err error) {
	sp, ok := s.specs[service]
	if !ok || sp.Schema == "" {
		return "", "", fmt.Errorf("%s has no database in this stack", service)
	}
	return sp.DatabaseSpec(s.cfg.DatabaseSuffix).URLs(s.AdminURL)
}

// HasService reports whether the stack was asked to run service.
func (s *Stack) HasService(service string) bool { _, ok := s.specs[service]; return ok }

// envValue returns the value a service was given for key (last one wins, as in exec).
func (s *Stack) envValue(service, key string) string {
	v := ""
	for _, kv := range s.env[service] {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// Env returns the value a service was started with for key.
func (s *Stack) Env(service, key string) string { return s.envValue(service, key) }
