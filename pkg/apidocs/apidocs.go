// Package apidocs embeds the OpenAPI documents generated from proto/ so the edge can serve
// them next to the JSON API they describe. The documents are produced by `make generate`
// (protoc-gen-openapiv2) into the openapi folder and committed; never edit them by hand.
package apidocs

import (
	"embed"
	"io/fs"
)

//go:embed openapi
var files embed.FS

// FS returns the generated OpenAPI documents, rooted so that paths read like
// "forge/tenant/v1/tenant.swagger.json".
func FS() fs.FS {
	sub, err := fs.Sub(files, "openapi")
	if err != nil {
		// The folder is embedded at build time; its absence is a build defect, not a runtime state.
		panic(err)
	}
	return sub
}
