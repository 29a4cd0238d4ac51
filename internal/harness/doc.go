// Package harness starts and stops the real processes that the end-to-end
// tests (e2e/) and the benchmark harnesses (bench/) run against: free
// loopback ports, child processes in their own process group with a
// captured log, waits on HTTP endpoints and READY lines, the Envoy binary,
// the gatehouse binary, `gatehouse serve`, Envoy and Keycloak.
//
// It returns errors and never imports testing, so bench mains use it as
// they are; e2e wraps the errors with t.Fatal. A part that cannot start
// is an error that says why, with the end of its log.
package harness
