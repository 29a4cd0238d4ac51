// This module exists only to keep the Go tool out of node_modules
// (some npm packages ship Go files): ./... in the gatehouse module
// does not descend into a directory with its own go.mod.
module gatehouse.invalid/examples/backstage

go 1.26
