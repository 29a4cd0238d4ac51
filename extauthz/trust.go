package extauthz

import (
	"errors"
	"fmt"
	"strings"
)

// readTrust fills what the issuer's settings let gatehouse believe of the
// token: whether its email is verified, whether it is a client-credentials
// token, and which of its groups count.
func readTrust(id *Identity, claims members, c IssuerConfig) error {
	if id.Email != "" {
		v, err := emailVerified(claims)
		switch {
		case err != nil:
			return err
		case v:
			id.EmailVerified, id.EmailTrust = true, "email_verified"
		case c.TrustEmail:
			id.EmailVerified, id.EmailTrust = true, "trust_email"
		default:
			id.EmailTrust = "" // why not is written only when asked (Identity.emailWhyNot)
		}
	}
	if id.ClientID != "" {
		machine, why, err := machineToken(claims, c, id.ClientID)
		if err != nil {
			return err
		}
		id.Machine, id.machineMiss = machine, why
	}
	if c.GroupsClaim == "" {
		return nil
	}
	groups, err := groupsClaim(claims, c.GroupsClaim)
	if err != nil {
		return err
	}
	if c.GroupsPrefix != "" {
		kept := groups[:0]
		for _, g := range groups {
			if rest, ok := strings.CutPrefix(g, c.GroupsPrefix); ok && rest != "" {
				kept = append(kept, rest)
			}
		}
		groups = kept
	}
	id.Groups, id.GroupsNamespace = groups, c.GroupsNamespace
	return nil
}

// emailVerified reads email_verified: true, or the string "true" that some
// IdPs send; anything else (absent, false, null) is not verified.
func emailVerified(claims members) (bool, error) {
	r, ok := claims.get("email_verified")
	if !ok {
		return false, nil
	}
	switch string(r) {
	case "true", `"true"`:
		return true, nil
	case "false", `"false"`, "null":
		return false, nil
	}
	return false, errors.New(`claim "email_verified" is not a boolean`)
}

// machineClaim is one of an issuer's MachineClaims: claim = value, where
// {client} in value stands for the token's client id.
type machineClaim struct{ claim, value string }

func parseMachineClaim(s string) (machineClaim, error) {
	k, v, ok := strings.Cut(s, "=")
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	if !ok || k == "" || v == "" {
		return machineClaim{}, fmt.Errorf("%q is not claim=value", s)
	}
	return machineClaim{k, v}, nil
}

// machineToken: every one of the issuer's MachineClaims holds for this
// token (a client-credentials token of client). miss is the one that did
// not ("" when the issuer has none).
func machineToken(claims members, c IssuerConfig, client string) (machine bool, miss string, err error) {
	if len(c.MachineClaims) == 0 {
		return false, "", nil
	}
	for _, s := range c.MachineClaims {
		m, err := parseMachineClaim(s) // validated at start
		if err != nil {
			return false, "", err
		}
		want := strings.ReplaceAll(m.value, "{client}", client)
		// A claim that is not a string does not hold (it never fails the token).
		got, present, err := stringClaim(claims, m.claim)
		if err != nil || !present || got != want {
			return false, s, nil // the claim that does not hold (a configured string: no allocation)
		}
	}
	return true, "", nil
}
