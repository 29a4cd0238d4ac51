package main

import (
	"fmt"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/extauthz"
	"github.com/gatehouse-dev/gatehouse/signin"
)

// samlSignInConfig fills the handler's SAML part from signin.saml and
// signin.saml_sp (nothing when no SAML IdP is configured).
func samlSignInConfig(s config.SignIn, hc *signin.Config) error {
	if len(s.SAML) == 0 {
		return nil
	}
	key, cert, err := signin.LoadSAMLKeyPair(s.SAMLSP.CertFile, s.SAMLSP.KeyFile)
	if err != nil {
		return fmt.Errorf("signin.saml_sp.cert_file/key_file: %w (fix: name a PEM certificate and its RSA or ECDSA key)", err)
	}
	hc.SAMLSP = signin.SAMLSPConfig{EntityID: s.SAMLSP.EntityID, Key: key, Certificate: cert}
	for _, p := range s.SAML {
		format := p.NameIDFormat
		if u := config.SAMLNameIDFormats[format]; u != "" {
			format = u
		}
		hc.SAML = append(hc.SAML, signin.SAMLConfig{Name: p.Name, MetadataFile: p.MetadataFile, MetadataURL: p.MetadataURL, EntityID: p.EntityID,
			NameIDFormat: format, EmailAttribute: p.EmailAttribute, GroupsAttribute: p.GroupsAttribute, GroupsPrefix: p.GroupsPrefix})
		if p.Name == s.Issuer {
			hc.SAMLDefault = p.Name
		}
	}
	return nil
}

// samlIssuers are the SAML IdPs' settings Check reads SAML sessions with
// (nil when sign-in or SAML is off).
func samlIssuers(cfg config.Config) map[string]extauthz.SAMLIssuer {
	if !cfg.SignIn.Enabled() || len(cfg.SignIn.SAML) == 0 {
		return nil
	}
	out := map[string]extauthz.SAMLIssuer{}
	for _, p := range cfg.SignIn.SAML {
		out[p.Name] = extauthz.SAMLIssuer{Name: p.Name, EntityID: p.EntityID, TrustEmail: p.TrustEmail,
			Groups: p.GroupsAttribute != "", GroupsPrefix: p.GroupsPrefix, GroupsNamespace: p.GroupsNamespace}
	}
	return out
}
