package extauthz

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Tokens signed by go-jose verify with gatehouse's direct verification for
// every supported algorithm, and fail with another key, a flipped bit, or a
// key of the wrong type.
func TestCompactJWSVerifyAlgorithms(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		alg        jose.SignatureAlgorithm
		priv       crypto.Signer
		pub, wrong any
	}{
		{jose.RS256, rsaKey, &rsaKey.PublicKey, &otherRSA.PublicKey},
		{jose.RS384, rsaKey, &rsaKey.PublicKey, &otherRSA.PublicKey},
		{jose.RS512, rsaKey, &rsaKey.PublicKey, &otherRSA.PublicKey},
		{jose.PS256, rsaKey, &rsaKey.PublicKey, &otherRSA.PublicKey},
		{jose.PS512, rsaKey, &rsaKey.PublicKey, &otherRSA.PublicKey},
		{jose.ES256, p256, &p256.PublicKey, &p384.PublicKey},
		{jose.ES384, p384, &p384.PublicKey, &p256.PublicKey},
		{jose.ES512, p521, &p521.PublicKey, &p256.PublicKey},
		{jose.EdDSA, edPriv, edPub, &rsaKey.PublicKey},
	}
	for _, c := range cases {
		t.Run(string(c.alg), func(t *testing.T) {
			s, err := jose.NewSigner(jose.SigningKey{Algorithm: c.alg, Key: jose.JSONWebKey{Key: c.priv, KeyID: "k1"}}, (&jose.SignerOptions{}).WithType("JWT"))
			if err != nil {
				t.Fatal(err)
			}
			obj, err := s.Sign([]byte(`{"iss":"x"}`))
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := obj.CompactSerialize()
			j, err := parseCompact(raw)
			if err != nil || j.decodeSig() != nil {
				t.Fatalf("parse: %v", err)
			}
			if j.alg != string(c.alg) || j.kid != "k1" || j.typ != "JWT" || string(j.payload) != `{"iss":"x"}` {
				t.Fatalf("parsed %+v", j)
			}
			if !j.verifyWith(c.pub) {
				t.Fatal("valid signature rejected")
			}
			if j.verifyWith(c.wrong) {
				t.Fatal("verified with the wrong key")
			}
			j.sig[len(j.sig)/2] ^= 1
			if j.verifyWith(c.pub) {
				t.Fatal("flipped bit verified")
			}
			// The same signature presented under another alg never verifies.
			j.sig[len(j.sig)/2] ^= 1
			for _, other := range []string{"RS256", "PS256", "ES256", "EdDSA", "HS256", "none"} {
				if other != string(c.alg) {
					j2 := *j
					j2.alg = other
					if j2.verifyWith(c.pub) {
						t.Fatalf("verified as %s", other)
					}
				}
			}
		})
	}
}

func TestParseCompactRejects(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	for name, raw := range map[string]string{
		"two parts":        "a.b",
		"four parts":       "a.b.c.d",
		"header not json":  enc([]byte("nope")) + ".e30.",
		"header an array":  enc([]byte(`["alg"]`)) + ".e30.",
		"no alg":           enc([]byte(`{"kid":"k"}`)) + ".e30.",
		"alg not a string": enc([]byte(`{"alg":1}`)) + ".e30.",
		"alg in capitals":  enc([]byte(`{"ALG":"RS256"}`)) + ".e30.",
		"crit":             enc([]byte(`{"alg":"RS256","crit":["exp"],"exp":1}`)) + ".e30.",
		"b64 false":        enc([]byte(`{"alg":"RS256","b64":false,"crit":["b64"]}`)) + ".e30.",
		"b64 alone":        enc([]byte(`{"alg":"RS256","b64":false}`)) + ".e30.",
		"payload not b64":  enc([]byte(`{"alg":"RS256"}`)) + ".%%%.",
		"padded header":    enc([]byte(`{"alg":"RS256"}`)) + "=.e30.",
	} {
		if _, err := parseCompact(raw); err == nil {
			t.Errorf("%s: parsed %q", name, raw)
		}
	}
	j, err := parseCompact(enc([]byte(`{"alg":"RS256"}`)) + ".e30.x")
	if err != nil {
		t.Fatal(err)
	}
	if j.decodeSig() == nil {
		t.Error("a one-character signature decoded")
	}
	if !strings.HasSuffix(j.signingInput, ".e30") {
		t.Errorf("signing input %q", j.signingInput)
	}
}

// The assertion memo returns the same token for the same claims while it
// has more than half its life left, and never for different claims.
func TestSignerMemo(t *testing.T) {
	s, err := NewSigner(SignerConfig{Issuer: "x", Lifetime: 30 * time.Second, Rotate: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a := Assertion{Subject: "user:default/a", Audience: "component:default/c", Kind: "user", Groups: []string{"g1", "g2"}, Route: "r"}
	t1, e1, _ := s.Sign(a, now)
	t2, e2, _ := s.Sign(a, now.Add(14*time.Second))
	if t1 != t2 || !e1.Equal(e2) {
		t.Fatal("same claims within half the lifetime: signed again")
	}
	if t3, e3, _ := s.Sign(a, now.Add(15*time.Second)); t3 == t1 || !e3.After(e1) {
		t.Fatal("an assertion past half its lifetime was reused")
	}
	for _, b := range []Assertion{
		{Subject: "user:default/a", Audience: "component:default/c", Kind: "user", Groups: []string{"g1"}, Route: "r"},
		{Subject: "user:default/a", Audience: "component:default/c", Kind: "user", Groups: []string{"g1", "g2"}, Route: "r2"},
		{Subject: "user:default/a", Audience: "component:default/c", Kind: "user", Groups: []string{"g1", "g2"}, Route: "r", Email: "x@y"},
		{Subject: "user:default/a", Audience: "component:default/c", Kind: "user", Groups: []string{"g1", "g2"}, Route: "r", Peer: "component:default/p"},
		{Subject: "user:default/a\x00", Audience: "component:default/c", Kind: "user", Groups: []string{"g1", "g2"}, Route: "r"},
		{Subject: "user:default/a", Audience: "component:default/c", Kind: "user", Groups: []string{"g1", "g2"}, Route: "r", ID: "j"},
	} {
		if memoKey(b) == memoKey(a) && b.ID == "" {
			t.Fatalf("memo key collision: %+v", b)
		}
		if tok, _, _ := s.Sign(b, now.Add(time.Second)); tok == t1 {
			t.Fatalf("reused for different claims: %+v", b)
		}
	}
	if memoKey(Assertion{Subject: "a", Audience: "bc"}) == memoKey(Assertion{Subject: "ab", Audience: "c"}) {
		t.Fatal("memo key is ambiguous")
	}
	// A rotation signs anew with the new key.
	t4, _, _ := s.Sign(a, now.Add(16*time.Second))
	if err := s.Rotate(); err != nil {
		t.Fatal(err)
	}
	if t5, _, _ := s.Sign(a, now.Add(17*time.Second)); t5 == t4 {
		t.Fatal("reused across a rotation")
	}
}

// objectMembers agrees with encoding/json on objects, and refuses what it
// refuses.
func TestObjectMembers(t *testing.T) {
	for _, in := range []string{
		`{}`, ` { } `, `{"a":1}`, `{"a" : "x" , "b":[1,{"c":"}"}],"d":{"e":[]},"f":null,"g":true,"h":-1.5e3}`,
		`{"esc\"aped":"v\\\"","u":"\u00e9\n","a":1,"a":2}`, "{\n\t\"k\"\r:\n[ ]\n}", `{"s":"]}\\"}`,
	} {
		got, err := objectMembers([]byte(in))
		var want map[string]json.RawMessage
		if json.Unmarshal([]byte(in), &want) != nil || err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		names := map[string]bool{}
		for _, m := range got {
			names[string(m.name)] = true
		}
		if len(names) != len(want) {
			t.Fatalf("%s: got %v want %v", in, got, want)
		}
		for k, v := range want {
			if g, _ := got.get(k); string(g) != string(v) {
				t.Errorf("%s: %q = %s, want %s", in, k, g, v)
			}
		}
	}
	for _, in := range []string{``, `null`, `[]`, `"x"`, `{"a":}`, `{"a":1`, `{"a":1}x`, `{a:1}`, `1`} {
		if _, err := objectMembers([]byte(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// go test -fuzz FuzzObjectMembers ./extauthz/ compares with encoding/json.
func FuzzObjectMembers(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,{"b":"]"}],"c":"\""}`, `{"a":1,"a":2}`, `[1]`, `{"a":1`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := objectMembers(data)
		var want map[string]json.RawMessage
		werr := json.Unmarshal(data, &want)
		if (err == nil) != (werr == nil && want != nil) {
			t.Fatalf("%q: err %v, encoding/json %v", data, err, werr)
		}
		if err != nil {
			return
		}
		names := map[string]bool{}
		for _, m := range got {
			names[string(m.name)] = true
		}
		if len(names) != len(want) {
			t.Fatalf("%q: %d members, encoding/json %d", data, len(names), len(want))
		}
		for k, v := range want {
			if g, _ := got.get(k); string(g) != string(v) {
				t.Fatalf("%q: %q = %s, want %s", data, k, g, v)
			}
		}
	})
}

// go test -fuzz FuzzPlainStrings ./extauthz/: the fast path for a groups
// claim reads what encoding/json reads, or leaves the value to it.
func FuzzPlainStrings(f *testing.F) {
	for _, s := range []string{`[]`, `["a","b"]`, ` [ "a" , "/b" ] `, `["a\"b"]`, `["é"]`, `[1]`, `"a"`, `["a",]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return // claims are validated before they are read
		}
		got, ok := plainStrings(data)
		if !ok {
			return
		}
		var want []string
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("%q read as %q, encoding/json: %v", data, got, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %q, encoding/json %q", data, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%q: %q, encoding/json %q", data, got, want)
			}
		}
	})
}
