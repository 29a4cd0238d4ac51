package main

import (
	"strings"
	"testing"
)

// signin.saml and signin.saml_sp: every missing or wrong piece names its
// key and a fix; a complete one loads and gives Check the IdP's settings.
func TestSAMLSignInConfig(t *testing.T) {
	const head = "issuers:\n  - name: kc\n    issuer_url: https://idp\n    audiences: [gatehouse]\n" +
		"signin:\n  listen: 127.0.0.1:18002\n  issuer: corp\n  key_file: k\n"
	const sp = "  saml_sp: {entity_id: https://gate/sp, cert_file: sp.crt, key_file: sp.key}\n"
	for body, key := range map[string]string{
		"  saml: [{name: corp, metadata_file: idp.xml}]\n":                              "signin.saml_sp.entity_id",
		"  saml_sp: {entity_id: x}\n  saml: [{name: corp, metadata_file: idp.xml}]\n":   "signin.saml_sp.cert_file",
		sp + "  saml: [{name: corp}]\n":                                                 "signin.saml[0].metadata_file",
		sp + "  saml: [{name: corp, metadata_file: a, metadata_url: https://b}]\n":      "signin.saml[0].metadata_file",
		sp + "  saml: [{name: corp, metadata_url: 'ftp://idp/md'}]\n":                   "signin.saml[0].metadata_url",
		sp + "  saml: [{name: corp, metadata_file: a}, {name: kc, metadata_file: b}]\n": "signin.saml[1].name",
		sp + "  saml: [{name: corp, metadata_file: a, name_id_format: bogus}]\n":        "signin.saml[0].name_id_format",
		sp + "  saml: [{name: corp, metadata_file: a, groups_prefix: x}]\n":             "signin.saml[0].groups_attribute",
		sp + "  saml: [{name: other, metadata_file: a}]\n":                              "signin.issuer",
		sp + "  saml: [{name: '', metadata_file: a}, {name: corp, metadata_file: b}]\n": "signin.saml[0].name",
	} {
		if _, err := loadConfig(writeConfig(t, head+body)); err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "fix") {
			t.Errorf("config %q: error %v does not name %s with a fix", body, err, key)
		}
	}
	c, err := loadConfig(writeConfig(t, head+sp+"  saml:\n    - {name: corp, metadata_url: 'https://idp/md', trust_email: true, groups_attribute: groups, groups_prefix: gh-}\n"))
	if err != nil {
		t.Fatalf("a complete SAML configuration: %v", err)
	}
	got := samlIssuers(c)["corp"]
	if got.Name != "corp" || !got.TrustEmail || !got.Groups || got.GroupsPrefix != "gh-" {
		t.Fatalf("Check's view of the IdP: %+v", got)
	}
}
