package extauthz

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// FuzzCompactJWSAgainstGoJose checks gatehouse's direct JWS verification
// against go-jose's on mutated tokens: whatever gatehouse accepts, go-jose
// must accept with the same key, algorithm and payload. (The direct path
// replaced go-oidc/go-jose verification for speed; this keeps it honest.)
func FuzzCompactJWSAgainstGoJose(f *testing.F) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keys := map[string]any{"RS256": &rsaKey.PublicKey, "PS256": &rsaKey.PublicKey, "ES256": &ecKey.PublicKey}
	for _, c := range []struct {
		alg  jose.SignatureAlgorithm
		priv any
	}{{jose.RS256, rsaKey}, {jose.PS256, rsaKey}, {jose.ES256, ecKey}} {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: c.alg, Key: jose.JSONWebKey{Key: c.priv, KeyID: "k"}}, (&jose.SignerOptions{}).WithType("JWT"))
		if err != nil {
			f.Fatal(err)
		}
		obj, err := s.Sign([]byte(`{"iss":"https://idp","sub":"alice","aud":"gatehouse","exp":4102444800}`))
		if err != nil {
			f.Fatal(err)
		}
		raw, _ := obj.CompactSerialize()
		f.Add(raw)
		f.Add(raw + "=")
		f.Add(" " + raw)
		f.Add(raw[:len(raw)-2])
	}
	algs := []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256}
	f.Fuzz(func(t *testing.T, raw string) {
		j, err := parseCompact(raw)
		if err != nil || j.decodeSig() != nil {
			return
		}
		key, ok := keys[j.alg]
		if !ok || !j.verifyWith(key) {
			return
		}
		obj, err := jose.ParseSigned(raw, algs)
		if err != nil {
			t.Fatalf("gatehouse accepted a token go-jose cannot parse (%v): %q", err, raw)
		}
		payload, err := obj.Verify(key)
		if err != nil {
			t.Fatalf("gatehouse accepted a signature go-jose rejects (%v): %q", err, raw)
		}
		if !bytes.Equal(payload, j.payload) {
			t.Fatalf("payloads differ: gatehouse %q, go-jose %q", j.payload, payload)
		}
		if got := string(obj.Signatures[0].Header.Algorithm); got != j.alg {
			t.Fatalf("alg: gatehouse %q, go-jose %q", j.alg, got)
		}
	})
}
