package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// verifyAssertion is what an upstream does with x-gatehouse-assertion:
// fetch gatehouse's JWKS, check the ES256 signature and the lifetime.
func verifyAssertion(jwksURL, token string) *assertionCheck {
	fail := func(err string) *assertionCheck { return &assertionCheck{Error: err} }
	resp, err := http.Get(jwksURL)
	if err != nil {
		return fail("fetching JWKS: " + err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return fail("JWKS: " + err.Error())
	}
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return fail("parse: " + err.Error())
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) == 0 {
		return fail("unknown kid " + jws.Signatures[0].Header.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		return fail("signature: " + err.Error())
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return fail("claims: " + err.Error())
	}
	exp, _ := claims["exp"].(float64)
	iat, _ := claims["iat"].(float64)
	if now := float64(time.Now().Unix()); exp < now || exp-iat > 60 {
		return fail("expired or too long-lived")
	}
	return &assertionCheck{Valid: true, Claims: claims}
}
