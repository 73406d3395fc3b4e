package edge

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"
)

// docsHandler serves the OpenAPI documents under /openapi/: an index at /openapi/ listing
// them, and each document at /openapi/<path> (for example
// /openapi/forge/tenant/v1/tenant.swagger.json). Documents of event messages (no routes) are
// left out.
func docsHandler(docs fs.FS) http.Handler {
	var files []string
	_ = fs.WalkDir(docs, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".json") && !strings.HasPrefix(p, "forge/events/") {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	index, _ := json.Marshal(map[string]any{"documents": prefixed(files)})
	served := map[string]bool{}
	for _, f := range files {
		served[f] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, "GET, HEAD")
			return
		}
		name := strings.TrimPrefix(r.URL.Path, DocsPrefix)
		if name == "" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(index)
			return
		}
		name = path.Clean(name)
		if !served[name] {
			writeStatus(w, http.StatusNotFound, codes.NotFound, "no such document: see "+DocsPrefix)
			return
		}
		b, err := fs.ReadFile(docs, name)
		if err != nil {
			writeStatus(w, http.StatusNotFound, codes.NotFound, "no such document: see "+DocsPrefix)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
}

func prefixed(files []string) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = DocsPrefix + f
	}
	return out
}
