package xds

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the "proto" codec wireCodec falls back to
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// The server writes xDS responses from bytes encoded once per build and
// shared by every stream (see resourceSet): a response is a list of byte
// slices, most of them pointing into those shared encodings, and wireCodec
// hands them to gRPC without copying. go-control-plane's server, like any
// server that passes gRPC a *DiscoveryResponse, has gRPC encode the whole
// message again for every stream: at 10k components that is ~8 MB per
// Envoy held until the Envoy has read it, i.e. gigabytes for a fleet that
// reconnects at once.
//
// Protobuf lets a message's fields come in any order and in several
// pieces, so a DiscoveryResponse is its resources (shared), then
// version_info, type_url and nonce (per response).

// Field numbers (envoy/service/discovery/v3/discovery.proto, google/protobuf/any.proto).
const (
	fieldSotwVersion  = 1 // DiscoveryResponse.version_info
	fieldSotwResource = 2 // DiscoveryResponse.resources (Any)
	fieldSotwTypeURL  = 4 // DiscoveryResponse.type_url
	fieldSotwNonce    = 5 // DiscoveryResponse.nonce

	fieldDeltaSystemVersion = 1 // DeltaDiscoveryResponse.system_version_info
	fieldDeltaResource      = 2 // DeltaDiscoveryResponse.resources (Resource)
	fieldDeltaTypeURL       = 4 // DeltaDiscoveryResponse.type_url
	fieldDeltaNonce         = 5 // DeltaDiscoveryResponse.nonce
	fieldDeltaRemoved       = 6 // DeltaDiscoveryResponse.removed_resources

	fieldResourceVersion = 1 // Resource.version
	fieldResourceAny     = 2 // Resource.resource (Any)
	fieldResourceName    = 3 // Resource.name

	fieldAnyTypeURL = 1 // Any.type_url
	fieldAnyValue   = 2 // Any.value
)

// wireMessage is an encoded message in pieces, sent as it is by wireCodec.
type wireMessage struct {
	parts [][]byte
	size  int
}

func (w *wireMessage) add(b []byte) {
	if len(b) > 0 {
		w.parts = append(w.parts, b)
		w.size += len(b)
	}
}

// wireCodec is the ADS server's gRPC codec: *wireMessage goes out as its
// pieces, everything else (the requests it reads) through the standard
// protobuf codec.
type wireCodec struct{ proto encoding.CodecV2 }

func newWireCodec() wireCodec { return wireCodec{proto: encoding.GetCodecV2("proto")} }

func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	if w, ok := v.(*wireMessage); ok {
		out := make(mem.BufferSlice, len(w.parts))
		for i, p := range w.parts {
			out[i] = mem.SliceBuffer(p) // never freed into a pool: shared, read-only
		}
		return out, nil
	}
	return c.proto.Marshal(v)
}

func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

func (wireCodec) Name() string { return "proto" }

// GRPCServerOptions are the options a gRPC server that serves Register's
// ADS service needs: the codec that writes the shared encodings.
func GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ForceServerCodecV2(newWireCodec())}
}

// appendString appends field num as a length-delimited string.
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// encodeAny is the encoding of a google.protobuf.Any holding value.
func encodeAny(typeURL string, value []byte) []byte {
	b := make([]byte, 0, len(typeURL)+len(value)+16)
	b = appendString(b, fieldAnyTypeURL, typeURL)
	b = protowire.AppendTag(b, fieldAnyValue, protowire.BytesType)
	return protowire.AppendBytes(b, value)
}

// appendSotwEntry appends one DiscoveryResponse.resources entry.
func appendSotwEntry(b, anyEnc []byte) []byte {
	b = protowire.AppendTag(b, fieldSotwResource, protowire.BytesType)
	return protowire.AppendBytes(b, anyEnc)
}

// appendDeltaEntry appends one DeltaDiscoveryResponse.resources entry: a
// Resource with name, version and the resource.
func appendDeltaEntry(b []byte, name, version string, anyEnc []byte) []byte {
	n := protowire.SizeTag(fieldResourceName) + protowire.SizeBytes(len(name)) +
		protowire.SizeTag(fieldResourceVersion) + protowire.SizeBytes(len(version)) +
		protowire.SizeTag(fieldResourceAny) + protowire.SizeBytes(len(anyEnc))
	b = protowire.AppendTag(b, fieldDeltaResource, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	b = appendString(b, fieldResourceName, name)
	b = appendString(b, fieldResourceVersion, version)
	b = protowire.AppendTag(b, fieldResourceAny, protowire.BytesType)
	return protowire.AppendBytes(b, anyEnc)
}

// sotwTail is the per-response part of a DiscoveryResponse.
func sotwTail(version, typeURL, nonce string) []byte {
	b := make([]byte, 0, len(version)+len(typeURL)+len(nonce)+8)
	b = appendString(b, fieldSotwVersion, version)
	b = appendString(b, fieldSotwTypeURL, typeURL)
	return appendString(b, fieldSotwNonce, nonce)
}

// deltaTail is the per-response part of a DeltaDiscoveryResponse.
func deltaTail(version, typeURL, nonce string) []byte {
	b := make([]byte, 0, len(version)+len(typeURL)+len(nonce)+8)
	b = appendString(b, fieldDeltaSystemVersion, version)
	b = appendString(b, fieldDeltaTypeURL, typeURL)
	return appendString(b, fieldDeltaNonce, nonce)
}

// appendRemoved appends DeltaDiscoveryResponse.removed_resources entries.
func appendRemoved(b []byte, names ...string) []byte {
	for _, n := range names {
		b = protowire.AppendTag(b, fieldDeltaRemoved, protowire.BytesType)
		b = protowire.AppendString(b, n)
	}
	return b
}
