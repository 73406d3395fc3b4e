package origin

// Visibility is who may open an app (mirrors apps' Visibility).
type Visibility int

// The visibilities. The zero value opens to nobody.
const (
	VisibilityUnknown Visibility = iota
	VisibilityPrivate
	VisibilityLink
	VisibilityPublic
)

// Credentials are what a request proved, each already checked against apps.
type Credentials struct {
	// Viewer: a view grant whose viewer is still the owner or a collaborator.
	Viewer bool
	// Share: a share grant whose token still opens the app.
	Share bool
}

// MayOpen is the access rule: a public app opens to anyone, a link-shared app to a holder of a
// working share link or to its owner and collaborators (a view grant), a private app only to
// its owner and collaborators. Anything else, an unknown visibility included, is refused.
func MayOpen(v Visibility, c Credentials) bool {
	switch v {
	case VisibilityPublic:
		return true
	case VisibilityLink:
		return c.Share || c.Viewer
	case VisibilityPrivate:
		return c.Viewer
	}
	return false
}
