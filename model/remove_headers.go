package model

// DefaultRemoveRequestHeaders are removed from every request at the edge
// and at sidecars (edge.remove_request_headers): method overrides, URL
// rewrites and client address or host claims that frameworks (Express's
// method-override, Rails, Symfony, Spring, ASP.NET, IIS URL Rewrite) act
// on, so that an upstream never runs another method or path, or believes
// another client or host, than the one authorized. Envoy itself sets
// x-forwarded-for (appending the peer it saw) and x-forwarded-proto.
var DefaultRemoveRequestHeaders = []string{
	"x-http-method-override", "x-http-method", "x-method-override", "x-original-method",
	"x-original-url", "x-rewrite-url", "x-original-uri", "x-forwarded-uri", "x-forwarded-path", "x-forwarded-prefix",
	"forwarded", "x-forwarded-host", "x-forwarded-server", "x-forwarded-port", "x-host", "x-original-host",
	"x-real-ip", "x-client-ip", "true-client-ip", "x-cluster-client-ip",
}
