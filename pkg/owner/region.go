package owner

import "fmt"

// Region is a home region: every byte of a tenant lives only there.
type Region string

// The regions the suite runs in.
const (
	USEast Region = "us-east"
	EUWest Region = "eu-west"
)

// DefaultRegion is where a tenant lives unless it chose otherwise at sign-up.
const DefaultRegion = USEast

// Regions lists every region, in a stable order.
func Regions() []Region { return []Region{USEast, EUWest} }

// Valid reports whether r is a known region.
func (r Region) Valid() bool {
	switch r {
	case USEast, EUWest:
		return true
	}
	return false
}

// String returns the region's name.
func (r Region) String() string { return string(r) }

// ParseRegion reads a region name, refusing unknown ones.
func ParseRegion(s string) (Region, error) {
	r := Region(s)
	if !r.Valid() {
		return "", fmt.Errorf("unknown region %q", s)
	}
	return r, nil
}
