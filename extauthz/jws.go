package extauthz

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	_ "crypto/sha512" // SHA-384 and SHA-512
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"unsafe"
)

// compactJWS is a compact-serialised JWS (a JWT), split and decoded once:
// the protected header fields gatehouse uses, the payload, the signing
// input and the signature. Nothing in it is trusted until verify succeeds.
type compactJWS struct {
	alg, kid, typ string
	signingInput  string // BASE64URL(header) "." BASE64URL(payload)
	payload       []byte
	rawSig        string // BASE64URL(signature), decoded by decodeSig
	sig           []byte
	// Room for the members of the header and of the payload (claims), so
	// that splitting them allocates nothing for ordinary tokens.
	hdrMembers   [4]member
	claimMembers [16]member
	// buf holds the decoded header and payload, sigBuf the signature;
	// both are reused when the JWS goes back to the pool.
	buf, sigBuf []byte
}

// jwsPool recycles parsed tokens: a fresh Check parses one, and its
// buffers are the largest allocations of the Check.
var jwsPool = sync.Pool{New: func() any { return new(compactJWS) }}

// release returns j to the pool. Nothing may use j, or any slice of its
// payload, header or signature, afterwards.
func (j *compactJWS) release() {
	buf, sigBuf := j.buf, j.sigBuf
	*j = compactJWS{}
	if cap(buf) <= 8<<10 && cap(sigBuf) <= 1<<10 { // keep the pool's memory bounded
		j.buf, j.sigBuf = buf[:0], sigBuf[:0]
		jwsPool.Put(j)
	}
}

// b64 decodes JWS parts: unpadded base64url that refuses set unused bits
// (Strict) and anything outside its alphabet, padding included, but for
// CR and LF, which Go's decoder skips even then: b64Alphabet refuses
// those first.
var b64 = base64.RawURLEncoding.Strict()

// b64Alphabet: s has no line break (the one thing the strict decoder
// lets through); two vectorised byte searches, not a loop per byte.
func b64Alphabet(s string) bool {
	return strings.IndexByte(s, '\n') < 0 && strings.IndexByte(s, '\r') < 0
}

// bytesOf is s's bytes without a copy, for functions that only read them
// (decoding, hashing): a token is read several times per fresh Check.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// decodeSig decodes the signature; it is done after the cheap checks
// (issuer, alg). An empty signature (alg none) decodes; no key verifies it.
func (j *compactJWS) decodeSig() error {
	enc := b64
	if !b64Alphabet(j.rawSig) {
		return errors.New("signature: not canonical base64url")
	}
	j.sigBuf = slices.Grow(j.sigBuf[:0], enc.DecodedLen(len(j.rawSig)))[:enc.DecodedLen(len(j.rawSig))]
	n, err := enc.Decode(j.sigBuf, bytesOf(j.rawSig))
	if err != nil {
		return errors.New("signature: not base64url")
	}
	j.sig = j.sigBuf[:n:n]
	return nil
}

// parseCompact splits and decodes a compact JWS. It rejects anything but
// three base64url parts, a header that is not a JSON object with a string
// alg, and headers that change how the payload is processed (crit, b64),
// which gatehouse does not implement.
func parseCompact(raw string) (*compactJWS, error) {
	h, rest, ok := strings.Cut(raw, ".")
	p, s, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || strings.IndexByte(s, '.') >= 0 {
		return nil, fmt.Errorf("expected a compact JWS with 3 parts, got %d", strings.Count(raw, ".")+1)
	}
	// One token, one string: every part must be canonical base64url (only
	// its alphabet, no padding, no line breaks, unused low bits zero), so
	// a token cannot be re-spelled into other strings (other cache keys,
	// other audit hashes) that verify the same.
	if !b64Alphabet(h) || !b64Alphabet(p) {
		return nil, errors.New("a part is not canonical base64url")
	}
	// Header and payload decoded into one buffer.
	enc := b64
	j := jwsPool.Get().(*compactJWS)
	j.signingInput = raw[:len(h)+1+len(p)]
	size := enc.DecodedLen(len(h)) + enc.DecodedLen(len(p))
	j.buf = slices.Grow(j.buf[:0], size)[:size]
	buf := j.buf
	n, err := enc.Decode(buf, bytesOf(h))
	if err != nil {
		return nil, fmt.Errorf("header: %v", err)
	}
	hb := buf[:n:n]
	hdr, err := objectMembersInto(j.hdrMembers[:0], hb) // exact (case-sensitive) member names
	if err != nil {
		return nil, fmt.Errorf("header: not a JSON object")
	}
	if _, ok := hdr.get("crit"); ok {
		return nil, errors.New("header: crit extensions are not supported")
	}
	if _, ok := hdr.get("b64"); ok {
		return nil, errors.New("header: b64 is not supported")
	}
	for _, f := range [...]struct {
		name string
		dst  *string
	}{{"alg", &j.alg}, {"kid", &j.kid}, {"typ", &j.typ}} {
		r, ok := hdr.get(f.name)
		if !ok || string(r) == "null" {
			continue
		}
		if v, ok := plainString(r); ok {
			*f.dst = v
		} else if err := json.Unmarshal(r, f.dst); err != nil {
			return nil, fmt.Errorf("header: %s is not a string", f.name)
		}
	}
	if j.alg == "" {
		return nil, errors.New("header: no alg")
	}
	n, err = enc.Decode(buf[len(hb):], bytesOf(p))
	if err != nil {
		return nil, fmt.Errorf("payload: %v", err)
	}
	j.payload = buf[len(hb) : len(hb)+n : len(hb)+n]
	j.rawSig = s
	return j, nil
}

// verifyWith checks the signature with one public key, whose type the
// caller has matched to alg (keyMatchesAlg).
func (j *compactJWS) verifyWith(key any) bool {
	var h crypto.Hash
	switch j.alg {
	case "RS256", "PS256", "ES256":
		h = crypto.SHA256
	case "RS384", "PS384", "ES384":
		h = crypto.SHA384
	case "RS512", "PS512", "ES512":
		h = crypto.SHA512
	case "EdDSA":
		pub, ok := key.(ed25519.PublicKey)
		return ok && ed25519.Verify(pub, bytesOf(j.signingInput), j.sig)
	default:
		return false
	}
	var digest []byte
	if h == crypto.SHA256 {
		sum := sha256.Sum256(bytesOf(j.signingInput))
		digest = sum[:]
	} else {
		d := h.New()
		d.Write(bytesOf(j.signingInput))
		digest = d.Sum(nil)
	}
	switch pub := key.(type) {
	case *rsa.PublicKey:
		if j.alg[0] == 'P' {
			return rsa.VerifyPSS(pub, h, digest, j.sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil
		}
		return j.alg[0] == 'R' && rsa.VerifyPKCS1v15(pub, h, digest, j.sig) == nil
	case *ecdsa.PublicKey:
		// JWS ECDSA signatures are R || S, each the size of the curve order.
		size := (pub.Curve.Params().BitSize + 7) / 8
		if j.alg[0] != 'E' || len(j.sig) != 2*size {
			return false
		}
		r := new(big.Int).SetBytes(j.sig[:size])
		s := new(big.Int).SetBytes(j.sig[size:])
		return ecdsa.Verify(pub, digest, r, s)
	}
	return false
}

// members are a JSON object's members in order: names (unescaped) and raw
// values, slices of the decoded document where possible.
type members []member

type member struct{ name, value []byte }

// get returns the value of a member; the last of duplicate names wins, as
// with encoding/json.
func (ms members) get(name string) (json.RawMessage, bool) {
	for i := len(ms) - 1; i >= 0; i-- {
		if string(ms[i].name) == name {
			return ms[i].value, true
		}
	}
	return nil, false
}

// objectMembers splits a JSON object into its members, like json.Unmarshal
// into map[string]json.RawMessage (exact names) but without reflection,
// maps or copies. Tokens are decoded on every fresh Check, so this matters.
func objectMembers(data []byte) (members, error) {
	return objectMembersInto(make(members, 0, 16), data)
}

// objectMembersInto is objectMembers appending to ms (room the caller has).
func objectMembersInto(ms members, data []byte) (members, error) {
	if !json.Valid(data) {
		return nil, errors.New("not valid JSON")
	}
	// From here on data is valid JSON, so the scan below cannot run off
	// its end.
	i := skipSpace(data, 0)
	if data[i] != '{' {
		return nil, errors.New("not a JSON object")
	}
	i++
	for {
		i = skipSpace(data, i)
		switch data[i] {
		case '}':
			return ms, nil
		case ',':
			i = skipSpace(data, i+1)
		}
		ke := endOfString(data, i)
		name := data[i+1 : ke-1]
		if !isPlainString(data[i:ke]) {
			var s string
			if err := json.Unmarshal(data[i:ke], &s); err != nil {
				return nil, err
			}
			name = []byte(s)
		}
		i = skipSpace(data, skipSpace(data, ke)+1) // past ':'
		ve := endOfValue(data, i)
		ms = append(ms, member{name: name, value: data[i:ve:ve]})
		i = ve
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// endOfString returns the index after the string starting at data[i] ('"').
func endOfString(data []byte, i int) int {
	for j := i + 1; ; j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
}

// endOfValue returns the index after the value starting at data[i].
func endOfValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		return endOfString(data, i)
	case '{', '[':
		depth := 0
		for j := i; ; j++ {
			switch data[j] {
			case '"':
				j = endOfString(data, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
	}
	j := i
	for j < len(data) && data[j] != ',' && data[j] != '}' && data[j] != ']' && data[j] != ' ' && data[j] != '\t' && data[j] != '\n' && data[j] != '\r' {
		j++
	}
	return j
}
