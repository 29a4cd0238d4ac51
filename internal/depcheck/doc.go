// Package depcheck holds a test of the package layout: the outputs (xds,
// extauthz) link no part of the catalog side, and the IR (model) imports no
// other package of ours. It has no code of its own.
package depcheck
