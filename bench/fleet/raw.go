package main

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// The simulated Envoys read responses as bytes and take out only what an
// ADS client acts on: type, version, nonce, and per resource its name,
// version (delta) and encoded value, which stays a slice of the message.

// rawMessage is a response as received.
type rawMessage []byte

// rawCodec decodes into *rawMessage by keeping the bytes, and everything
// else (the requests the clients send) as protobuf.
type rawCodec struct{ proto encoding.CodecV2 }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*rawMessage); ok {
		*r = data.Materialize()
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

func (rawCodec) Name() string { return "proto" }

type rawResource struct {
	name, version string
	value         []byte // the resource's encoding (Any.value)
}

type rawResponse struct {
	typeURL, version, nonce string
	resources               []rawResource
	removed                 []string
}

// Field numbers of DiscoveryResponse / DeltaDiscoveryResponse, Resource and Any.
const (
	fVersion  = 1 // version_info / system_version_info
	fResource = 2 // resources
	fTypeURL  = 4
	fNonce    = 5
	fRemoved  = 6 // delta: removed_resources

	fResVersion = 1
	fResAny     = 2
	fResName    = 3

	fAnyValue = 2
)

// fields calls f for every length-delimited field of b (the only kind
// these messages hold) and skips the rest.
func fields(b []byte, f func(num protowire.Number, v []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, v); err != nil {
			return err
		}
	}
	return nil
}

func anyValue(b []byte) (out []byte, err error) {
	err = fields(b, func(num protowire.Number, v []byte) error {
		if num == fAnyValue {
			out = v
		}
		return nil
	})
	return out, err
}

// parseResponse reads a DiscoveryResponse (delta false) or a
// DeltaDiscoveryResponse.
func parseResponse(b []byte, delta bool) (*rawResponse, error) {
	r := &rawResponse{}
	err := fields(b, func(num protowire.Number, v []byte) error {
		switch num {
		case fVersion:
			r.version = string(v)
		case fTypeURL:
			r.typeURL = string(v)
		case fNonce:
			r.nonce = string(v)
		case fRemoved:
			if delta {
				r.removed = append(r.removed, string(v))
			}
		case fResource:
			var res rawResource
			var err error
			if !delta {
				res.value, err = anyValue(v)
				res.name = resourceName(res.value)
			} else {
				err = fields(v, func(num protowire.Number, v []byte) error {
					var err error
					switch num {
					case fResName:
						res.name = string(v)
					case fResVersion:
						res.version = string(v)
					case fResAny:
						res.value, err = anyValue(v)
					}
					return err
				})
			}
			if err != nil {
				return err
			}
			if res.name == "" {
				return errors.New("a resource without a name")
			}
			r.resources = append(r.resources, res)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("decoding a response: %w", err)
	}
	return r, nil
}

// resourceName reads field 1 (name) of a Cluster, Listener or
// RouteConfiguration without decoding the rest.
func resourceName(b []byte) string {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b)
			return string(v)
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return ""
		}
		b = b[n:]
	}
	return ""
}
