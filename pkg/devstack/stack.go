package devstack

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/devca"
	"github.com/forgeapps/backbone/pkg/events/embedded"
	"github.com/forgeapps/backbone/pkg/grpcclient"
	"github.com/forgeapps/backbone/pkg/mtls"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/workload"
)

// Config is what `devstack up` needs.
type Config struct {
	// Root is the repository root; state goes to Root/.dev and binaries come from Root/bin.
	Root string
	// Services are the services to run (those that have a main package), any order.
	Services []string
	Region   owner.Region
	// AdminURL is a PostgreSQL administrator URL (DATABASE_URL); empty finds or starts one.
	AdminURL string
	// NATSURL is an external NATS (NATS_URL); empty runs an embedded JetStream server.
	NATSURL string
	Stdout  io.Writer
	Logger  *slog.Logger
}

// Stack is a running local suite.
type Stack struct {
	cfg      Config
	dev      string
	procs    []*process
	cleanups []func()
	// GatewayURL and SandboxURL are set once the services are up.
	GatewayURL, SandboxURL string
}

type process struct {
	name string
	cmd  *exec.Cmd
	done chan error
}

// Up starts everything and blocks until ctx ends, then stops everything in reverse order.
func Up(ctx context.Context, cfg Config) error {
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
	if cfg.Region == "" {
		cfg.Region = owner.DefaultRegion
	}
	s := &Stack{cfg: cfg, dev: filepath.Join(cfg.Root, ".dev")}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	if err := os.MkdirAll(s.dev, 0o755); err != nil {
		return nil, err
	}
	certs := filepath.Join(s.dev, "certs")
	names := append(workload.Services(), workload.Billing, workload.Builder)
	if err := devca.WriteDir(certs, workload.DefaultTrustDomain, names, devca.DefaultValidity); err != nil {
		return nil, fmt.Errorf("dev certificates: %w", err)
	}
	kek, err := ensureKeyFile(filepath.Join(s.dev, "keys"), "kek-"+cfg.Region.String())
	if err != nil {
		return nil, err
	}

	deps := Deps{Logger: cfg.Logger, StateDir: s.dev}
	adminURL, stopPG, err := deps.EnsurePostgres(ctx, cfg.AdminURL)
	if err != nil {
		return nil, err
	}
	s.cleanups = append(s.cleanups, stopPG)

	natsURL := cfg.NATSURL
	if natsURL == "" {
		ns, err := embedded.Start(embedded.Config{Port: -1, StoreDir: filepath.Join(s.dev, "nats"), Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("embedded nats: %w", err)
		}
		s.cleanups = append(s.cleanups, ns.Shutdown)
		natsURL = ns.ClientURL()
		cfg.Logger.Info("embedded NATS JetStream running", "url", natsURL)
	}

	common := []string{
		"FORGE_REGION=" + cfg.Region.String(),
		"FORGE_TRUST_DOMAIN=" + workload.DefaultTrustDomain,
		"FORGE_TLS_CA=" + filepath.Join(certs, "ca.pem"),
		"NATS_URL=" + natsURL,
		"FORGE_DEV_MODE=1",
		"FORGE_CONSOLE_ORIGIN=https://localhost:8080",
		"FORGE_SANDBOX_DOMAIN=apps.localhost:8090",
		"FORGE_EDGE_CERT=" + filepath.Join(certs, devca.EdgeName+".pem"),
		"FORGE_EDGE_KEY=" + filepath.Join(certs, devca.EdgeName+"-key.pem"),
		"FORGE_KEY_PROVIDER=file://" + kek,
	}
	for _, sp := range Specs() {
		common = append(common, addrEnvFor(sp)...)
	}

	for _, sp := range Specs() {
		if !slices.Contains(cfg.Services, sp.Name) {
			continue
		}
		env := append(slices.Clone(common),
			"FORGE_GRPC_ADDR="+loopback(sp.GRPCPort),
			"FORGE_HEALTH_ADDR="+loopback(sp.HealthPort),
			"FORGE_TLS_CERT="+filepath.Join(certs, sp.Name+".pem"),
			"FORGE_TLS_KEY="+filepath.Join(certs, sp.Name+"-key.pem"),
		)
		if sp.HTTPPort != 0 {
			env = append(env, "FORGE_HTTP_ADDR="+loopback(sp.HTTPPort))
		}
		if sp.Blob {
			dir := filepath.Join(s.dev, "blob", sp.Name)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, err
			}
			env = append(env, "FORGE_BLOB_URL=file://"+dir)
		}
		if sp.Schema != "" {
			dbSpec := sp.DatabaseSpec()
			if err := database.Bootstrap(ctx, adminURL, dbSpec); err != nil {
				return nil, fmt.Errorf("%s: bootstrap database: %w", sp.Name, err)
			}
			migrationURL, runtimeURL, err := dbSpec.URLs(adminURL)
			if err != nil {
				return nil, err
			}
			env = append(env, "DATABASE_URL="+runtimeURL, "MIGRATION_DATABASE_URL="+migrationURL)
			if err := s.runOnce(ctx, sp.Name, env, "migrate"); err != nil {
				return nil, fmt.Errorf("%s: migrate: %w", sp.Name, err)
			}
		} else {
			// The administrator URL must never reach a service.
			env = append(env, "DATABASE_URL=", "MIGRATION_DATABASE_URL=")
		}
		if err := s.spawn(sp.Name, env); err != nil {
			return nil, err
		}
		if err := s.waitServing(ctx, sp, certs); err != nil {
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

func addrEnvFor(sp ServiceSpec) []string {
	if v, ok := addrEnv[sp.Name]; ok {
		return []string{v + "=" + loopback(sp.GRPCPort)}
	}
	return nil
}

// ensureKeyFile creates a random 256-bit key file with mode 0600 if it does not exist.
func ensureKeyFile(dir, name string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
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

func (s *Stack) binary(name string) string { return filepath.Join(s.cfg.Root, "bin", name) }

func (s *Stack) runOnce(ctx context.Context, name string, env []string, arg string) error {
	cmd := exec.CommandContext(ctx, s.binary(name), arg)
	cmd.Env = append(os.Environ(), env...)
	w := s.prefixed(name)
	cmd.Stdout, cmd.Stderr = w, w
	return cmd.Run()
}

func (s *Stack) spawn(name string, env []string) error {
	cmd := exec.Command(s.binary(name), "serve")
	cmd.Env = append(os.Environ(), env...)
	w := s.prefixed(name)
	cmd.Stdout, cmd.Stderr = w, w
	// Its own process group: the launcher alone receives the terminal's Ctrl-C and stops the
	// services in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	s.procs = append(s.procs, p)
	return nil
}

// prefixed writes a process's output to Stdout line by line with its name in front.
func (s *Stack) prefixed(name string) io.Writer {
	r, w := io.Pipe()
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(s.cfg.Stdout, "%-15s | %s\n", name, sc.Text())
		}
	}()
	return w
}

// waitServing polls the service's health over mTLS (as the gateway workload, which every
// service's table allows to call health) until it reports SERVING.
func (s *Stack) waitServing(ctx context.Context, sp ServiceSpec, certs string) error {
	src, err := mtls.NewSource(mtls.Files{
		CertFile: filepath.Join(certs, workload.Gateway+".pem"),
		KeyFile:  filepath.Join(certs, workload.Gateway+"-key.pem"),
		CAFile:   filepath.Join(certs, "ca.pem"),
	}, workload.DefaultTrustDomain, s.cfg.Logger)
	if err != nil {
		return err
	}
	cc, err := grpcclient.Dial(loopback(sp.GRPCPort), src.ClientCredentials(workload.Must(workload.DefaultTrustDomain, sp.Name)), nil)
	if err != nil {
		return err
	}
	defer cc.Close()
	return waitHealthy(ctx, cc, s.procs[len(s.procs)-1])
}

func waitHealthy(ctx context.Context, cc *grpc.ClientConn, p *process) error {
	deadline := time.Now().Add(60 * time.Second)
	client := healthpb.NewHealthClient(cc)
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
		case <-time.After(300 * time.Millisecond):
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

// Stop stops the services in reverse start order (SIGTERM, then SIGKILL after 15s), then the
// dependencies the stack started.
func (s *Stack) Stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			p.done <- err
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	s.procs = nil
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
	s.cleanups = nil
}
