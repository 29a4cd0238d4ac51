// Package examples carries the example catalog into the gatehouse binary:
// `gatehouse serve` uses it when no catalog source is configured, so a first
// run shows something real.
package examples

import "embed"

// DefaultCatalog is examples/catalog; its root is catalog/catalog-info.yaml.
//
//go:embed catalog
var DefaultCatalog embed.FS

// DefaultCatalogRoot is the file to start reading DefaultCatalog from.
const DefaultCatalogRoot = "catalog/catalog-info.yaml"
