package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// LocalPostgresURL is the administrator URL of the PostgreSQL server a developer machine runs
// (Debian's cluster, trust authentication on loopback), and the default of the tests.
const LocalPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// LocalNATSURL is the NATS server a developer machine runs, and the default of the tests.
const LocalNATSURL = "nats://127.0.0.1:4222"

// Deps finds or starts the external dependencies.
type Deps struct {
	Logger *slog.Logger
	// StateDir holds what the stack creates (a throwaway cluster, NATS storage).
	StateDir string
	// PostgresPort is where a throwaway cluster listens; 0 means 5432, the port the tests
	// and the local stack expect.
	PostgresPort int
}

// PingPostgres reports whether url answers as an administrator.
func PingPostgres(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Ping(ctx)
}

// EnsurePostgres returns an administrator URL: adminURL when given (it must answer), else the
// local server on 127.0.0.1:5432 (started through pg_ctlcluster when a Debian cluster exists
// but is down), else a throwaway cluster on port 5432 in StateDir, created with the Debian
// binaries (installed with apt when absent and running as root). The returned stop function
// stops a cluster this call started itself; it is a no-op otherwise.
func (d Deps) EnsurePostgres(ctx context.Context, adminURL string) (string, func(), error) {
	noop := func() {}
	if adminURL != "" {
		if err := PingPostgres(ctx, adminURL); err != nil {
			return "", noop, fmt.Errorf("DATABASE_URL does not answer: %w", err)
		}
		return adminURL, noop, nil
	}
	if PingPostgres(ctx, LocalPostgresURL) == nil {
		return LocalPostgresURL, noop, nil
	}
	if d.startDebianCluster(ctx) && d.waitPostgres(ctx, LocalPostgresURL) == nil {
		return LocalPostgresURL, noop, nil
	}
	url, stop, err := d.StartThrowawayCluster(ctx)
	if err != nil {
		return "", noop, err
	}
	return url, stop, nil
}

func (d Deps) waitPostgres(ctx context.Context, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := PingPostgres(ctx, url)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// startDebianCluster starts the clusters pg_lsclusters knows about, if any.
func (d Deps) startDebianCluster(ctx context.Context) bool {
	out, err := exec.CommandContext(ctx, "pg_lsclusters", "--no-header").Output()
	if err != nil {
		return false
	}
	started := false
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] == "online" {
			continue
		}
		d.Logger.Info("starting the local PostgreSQL cluster", "version", f[0], "cluster", f[1])
		cmd := exec.CommandContext(ctx, "pg_ctlcluster", "--skip-systemctl-redirect", f[0], f[1], "start")
		if out, err := cmd.CombinedOutput(); err != nil {
			d.Logger.Warn("pg_ctlcluster failed", "output", strings.TrimSpace(string(out)))
			continue
		}
		started = true
	}
	return started
}

// postgresBinDir finds Debian's PostgreSQL server binaries, installing them when possible.
func (d Deps) postgresBinDir(ctx context.Context) (string, error) {
	find := func() string {
		dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
		sort.Strings(dirs)
		if len(dirs) == 0 {
			return ""
		}
		return filepath.Dir(dirs[len(dirs)-1])
	}
	if dir := find(); dir != "" {
		return dir, nil
	}
	if os.Geteuid() != 0 {
		return "", errors.New("no PostgreSQL found: install it (sudo apt-get install postgresql) or set DATABASE_URL")
	}
	if err := d.aptInstall(ctx, "postgresql"); err != nil {
		return "", err
	}
	if dir := find(); dir != "" {
		return dir, nil
	}
	return "", errors.New("postgresql installed but initdb not found")
}

func (d Deps) aptInstall(ctx context.Context, pkgs ...string) error {
	d.Logger.Info("installing with apt-get", "packages", strings.Join(pkgs, " "))
	for _, args := range [][]string{{"update"}, append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", args[0], err, out)
		}
	}
	return nil
}

// StartThrowawayCluster creates a trust-auth cluster in StateDir/pgdata listening on
// 127.0.0.1:PostgresPort and starts it in the background (it outlives this process, so
// `make test` can start it and then run the tests). It returns the administrator URL and a
// function stopping the cluster.
func (d Deps) StartThrowawayCluster(ctx context.Context) (string, func(), error) {
	port := d.PostgresPort
	if port == 0 {
		port = 5432
	}
	adminURL := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	bin, err := d.postgresBinDir(ctx)
	if err != nil {
		return "", nil, err
	}
	data, err := filepath.Abs(filepath.Join(d.StateDir, "pgdata"))
	if err != nil {
		return "", nil, err
	}
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, filepath.Join(bin, name), args...)
		// The server refuses to run as root: run it as the postgres system user.
		if os.Geteuid() == 0 {
			cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", filepath.Join(bin, name)}, args...)...)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", name, err, out)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(data), 0o755); err != nil {
		return "", nil, err
	}
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		if err := os.MkdirAll(data, 0o700); err != nil {
			return "", nil, err
		}
		if os.Geteuid() == 0 {
			if err := chownToPostgres(data); err != nil {
				return "", nil, err
			}
		}
		d.Logger.Info("creating a throwaway PostgreSQL cluster", "dir", data)
		if err := run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"); err != nil {
			return "", nil, err
		}
	}
	d.Logger.Info("starting the throwaway PostgreSQL cluster", "dir", data)
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s", port, data)
	if err := run("pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(data, "server.log"), "-w", "start"); err != nil {
		return "", nil, err
	}
	stop := func() {
		if err := run("pg_ctl", "-D", data, "-m", "fast", "-w", "stop"); err != nil {
			d.Logger.Warn("stopping the throwaway cluster failed", "error", err)
		}
	}
	if err := d.waitPostgres(ctx, adminURL); err != nil {
		stop()
		return "", nil, err
	}
	return adminURL, stop, nil
}

func chownToPostgres(dir string) error {
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("the postgres system user is missing: %w", err)
	}
	var uid, gid int
	if _, err := fmt.Sscan(u.Uid, &uid); err != nil {
		return err
	}
	if _, err := fmt.Sscan(u.Gid, &gid); err != nil {
		return err
	}
	return os.Chown(dir, uid, gid)
}

// Answers reports whether something accepts TCP connections on addr.
func Answers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// EnsureLocalNATS makes sure a JetStream server answers on 127.0.0.1:4222, starting Debian's
// nats-server in the background (installing it when absent and running as root). The tests
// mostly run in-process servers; this is for the ones that exercise a separate process.
func (d Deps) EnsureLocalNATS(ctx context.Context) error {
	if Answers("127.0.0.1:4222") {
		return nil
	}
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if os.Geteuid() != 0 {
			return errors.New("nats-server is not running and not installed: install it (sudo apt-get install nats-server)")
		}
		if err := d.aptInstall(ctx, "nats-server"); err != nil {
			return err
		}
		if bin, err = exec.LookPath("nats-server"); err != nil {
			return err
		}
	}
	store, err := filepath.Abs(filepath.Join(d.StateDir, "nats"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(store, 0o700); err != nil {
		return err
	}
	d.Logger.Info("starting nats-server with JetStream", "store", store)
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", "4222", "-js", "-sd", store, "-l", filepath.Join(store, "server.log"))
	// Detached, so it keeps running after `make deps` returns, like the machine's own service.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start nats-server: %w", err)
	}
	_ = cmd.Process.Release()
	deadline := time.Now().Add(15 * time.Second)
	for !Answers("127.0.0.1:4222") {
		if time.Now().After(deadline) {
			return errors.New("nats-server did not start listening on 127.0.0.1:4222")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}
