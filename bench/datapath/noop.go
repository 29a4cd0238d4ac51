package main

// A no-op ext_authz server: it answers every Check with OK and nothing
// else. Envoy with ext_authz pointed at it is the floor of any ext_authz
// gRPC service on this Envoy: what the filter and the gRPC round trip cost.

import (
	"context"
	"net"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
)

type noopServer struct {
	authv3.UnimplementedAuthorizationServer
}

func (noopServer) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{Status: &status.Status{}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}, nil
}

// startNoop serves the no-op Check on a free loopback port.
func startNoop() (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	g := grpc.NewServer()
	authv3.RegisterAuthorizationServer(g, noopServer{})
	go func() { _ = g.Serve(l) }()
	return l.Addr().String(), g.Stop, nil
}
