package k8s

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Docker cannot run on the development machines, so each service's Dockerfile is checked
// statically: the instructions are parsed and held to the image contract the manifests rely on.

type instruction struct {
	Cmd  string // upper case
	Args string
}

// parseDockerfile returns the instructions of a Dockerfile: comments dropped, continuation
// lines joined.
func parseDockerfile(text string) []instruction {
	var out []instruction
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		full := strings.TrimSpace(cur.String())
		cur.Reset()
		cmd, args, _ := strings.Cut(full, " ")
		out = append(out, instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args)})
	}
	return out
}

// dockerfileProblems lists how a Dockerfile breaks the image contract for service svc.
func dockerfileProblems(svc service, goVersion, text string) []string {
	var p []string
	ins := parseDockerfile(text)
	var froms []string
	for _, in := range ins {
		if in.Cmd == "FROM" {
			froms = append(froms, in.Args)
		}
	}
	if len(froms) != 2 {
		return append(p, fmt.Sprintf("want a two-stage build, got %d stages", len(froms)))
	}
	builder := regexp.MustCompile(`^golang:` + regexp.QuoteMeta(goVersion) + `(-[a-z]+)?(@sha256:[0-9a-f]{64})? AS build$`)
	if !builder.MatchString(froms[0]) {
		p = append(p, "builder stage is not golang:"+goVersion+" AS build: "+froms[0])
	}
	final := regexp.MustCompile(`^gcr\.io/distroless/static-debian12:nonroot@sha256:[0-9a-f]{64}$`)
	if !final.MatchString(froms[1]) {
		p = append(p, "final stage is not distroless static nonroot pinned by digest: "+froms[1])
	}
	finalStart := slices.IndexFunc(ins, func(in instruction) bool { return in.Cmd == "FROM" && in.Args == froms[1] })
	build, final2 := ins[:finalStart], ins[finalStart+1:]

	bin := "/out/" + svc.Name
	pkg := "./services/" + svc.Name + "/cmd/" + svc.Name
	if !slices.ContainsFunc(build, func(in instruction) bool {
		return in.Cmd == "ENV" && regexp.MustCompile(`(^|\s)CGO_ENABLED=0(\s|$)`).MatchString(in.Args)
	}) {
		p = append(p, "CGO_ENABLED=0 is not set in the builder (the binary must be static)")
	}
	if !slices.ContainsFunc(build, func(in instruction) bool {
		return in.Cmd == "RUN" && strings.Contains(in.Args, "go build") && strings.Contains(in.Args, "-o "+bin+" "+pkg)
	}) {
		p = append(p, "no `go build -o "+bin+" "+pkg+"`")
	}
	if !slices.ContainsFunc(build, func(in instruction) bool { return in.Cmd == "COPY" && strings.HasPrefix(in.Args, "go.work ") }) {
		p = append(p, "the build does not use the workspace (COPY go.work from the repository root)")
	}
	var user, entry, cmd, expose string
	copied := false
	for _, in := range final2 {
		switch in.Cmd {
		case "USER":
			user = in.Args
		case "ENTRYPOINT":
			entry = in.Args
		case "CMD":
			cmd = in.Args
		case "EXPOSE":
			expose = in.Args
		case "COPY":
			if in.Args == "--from=build "+bin+" /usr/local/bin/"+svc.Name {
				copied = true
			}
		case "RUN", "ADD":
			p = append(p, "the final stage runs or adds nothing: "+in.Cmd+" "+in.Args)
		}
	}
	if !copied {
		p = append(p, "the final stage does not copy "+bin)
	}
	if user != "65532:65532" {
		p = append(p, "USER is not 65532:65532 (the pods' runAsUser/runAsGroup): "+user)
	}
	if entry != `["/usr/local/bin/`+svc.Name+`"]` {
		p = append(p, "ENTRYPOINT: "+entry)
	}
	if cmd != `["serve"]` {
		p = append(p, "CMD is not [\"serve\"]: "+cmd)
	}
	want := []string{fmt.Sprint(svc.GRPCPort), fmt.Sprint(svc.HealthPort)}
	if svc.HTTPPort != 0 {
		want = append(want, fmt.Sprint(svc.HTTPPort))
	}
	got := strings.Fields(expose)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		p = append(p, fmt.Sprintf("EXPOSE %v, want %v", got, want))
	}
	return p
}

// workspaceGoVersion reads the go directive of go.work.
func workspaceGoVersion(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(tb), "go.work"))
	require.NoError(tb, err)
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+\.\d+)$`).FindSubmatch(b)
	require.NotNil(tb, m, "go.work has a go directive")
	return string(m[1])
}

func TestDockerfiles(t *testing.T) {
	goVersion := workspaceGoVersion(t)
	for _, svc := range services() {
		t.Run(svc.Name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(repoRoot(t), "services", svc.Name, "Dockerfile"))
			require.NoError(t, err, "every service has a Dockerfile")
			require.Empty(t, dockerfileProblems(svc, goVersion, string(b)))
		})
	}
}

// TestDockerfileRulesBite breaks the apps Dockerfile one way at a time.
func TestDockerfileRulesBite(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "services", "apps", "Dockerfile"))
	require.NoError(t, err)
	good := string(b)
	svc := serviceByName(t, "apps")
	goVersion := workspaceGoVersion(t)
	require.Empty(t, dockerfileProblems(svc, goVersion, good))
	cases := []struct{ name, old, new string }{
		{"cgo on", "CGO_ENABLED=0", "CGO_ENABLED=1"},
		{"root user", "USER 65532:65532", "USER root"},
		{"floating base", "nonroot@sha256:", "nonroot-x@sha256:"},
		{"latest builder", "golang:" + goVersion + "-bookworm", "golang:latest"},
		{"wrong port", "EXPOSE 9102 9202", "EXPOSE 9102"},
		{"shell in final stage", "USER 65532:65532", "RUN echo hi\nUSER 65532:65532"},
		{"other binary", "-o /out/apps ./services/apps/cmd/apps", "-o /out/apps ./services/tenant/cmd/tenant"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, good, tc.old)
			require.NotEmpty(t, dockerfileProblems(svc, goVersion, strings.Replace(good, tc.old, tc.new, 1)))
		})
	}
}
