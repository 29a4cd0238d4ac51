package main

import (
	"strings"
	"testing"
)

// A bad value names the place it came from, the key, the value and what
// the key takes; before, it was a strconv error with the fix "check the key
// names", and a value from the environment was blamed on the file.
func TestLoadConfigBadValueNamesKeyValueTypeAndPlace(t *testing.T) {
	p := writeConfig(t, "xds:\n  holdoff: 1s\nedge: {port: ten}\n")
	_, err := loadConfig(p)
	want := p + `:3: edge.port: "ten" is not a whole number (fix: write a whole number, e.g. 10000 (the default))`
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "strconv") || strings.Contains(err.Error(), "key names") {
		t.Errorf("file value: got %v\nwant %s", err, want)
	}

	wantConfigError(t, "issuers:\n  - name: a\n    issuer_url: https://idp\n    audiences: [x]\n    clock_skew: soon\n",
		`:5: issuers[0].clock_skew: "soon" is not a duration`)

	t.Setenv("GATEHOUSE_EDGE_PORT", "ten")
	_, err = loadConfig(writeConfig(t, "edge: {address: 0.0.0.0}\n"))
	want = `environment variable GATEHOUSE_EDGE_PORT=ten: edge.port: "ten" is not a whole number (fix: set GATEHOUSE_EDGE_PORT to a whole number`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("environment value: got %v\nwant %s", err, want)
	}
	// Validate's range errors are blamed on the variable too.
	t.Setenv("GATEHOUSE_EDGE_PORT", "0")
	_, err = loadConfig("")
	if want := "environment variable GATEHOUSE_EDGE_PORT=0: edge.port: 0 is not a port"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("environment value out of range: got %v\nwant %s", err, want)
	}
}

// wantConfigError loads a configuration file with body and wants an error
// that contains the file's path followed by want.
func wantConfigError(t *testing.T, body, want string) {
	t.Helper()
	p := writeConfig(t, body)
	if _, err := loadConfig(p); err == nil || !strings.Contains(err.Error(), p+want) {
		t.Errorf("config %q: got %v\nwant %s%s", body, err, p, want)
	}
}

func TestLoadConfigUnknownKeySuggests(t *testing.T) {
	wantConfigError(t, "admin: {listen: 127.0.0.1:9090}\nxds:\n  listn: x\n", ":3: xds.listn: unknown key (fix: did you mean xds.listen?)")
	wantConfigError(t, "admin: {listen: 127.0.0.1:9090}\nxdss: {listen: x}\n", ":2: xdss: unknown key (fix: did you mean xds?)")
}

// A YAML syntax error is reported on its line (yaml.v3 says line 1 for
// this error on line 2).
func TestLoadConfigYAMLErrorLine(t *testing.T) {
	wantConfigError(t, "# gatehouse\nedge: {port: 10000\nadmin: {listen: 127.0.0.1:9090}\n", ":2: invalid YAML: ")
	wantConfigError(t, "edge:\n  port: 1\n  port: 2\n", `:3: mapping key "port" already defined at line 2`)
}

// A GATEHOUSE_* variable that sets no key is warned about with the one it
// was probably meant to be; before, it was ignored silently.
func TestLoadConfigWarnsAboutUnknownEnvironmentVariables(t *testing.T) {
	t.Setenv("GATEHOUSE_ADMN_LISTEN", "127.0.0.1:9191")
	t.Setenv("GATEHOUSE_BACKSTAGE_SECRET", "x") // named by token_env: used, not a key
	t.Setenv("GATEHOUSE_CATALOG_BACKSTAGE_TOKEN_ENV", "GATEHOUSE_BACKSTAGE_SECRET")
	t.Setenv("GATEHOUSE_CATALOG_BACKSTAGE_BASE_URL", "https://backstage.example.com")
	var warnings []string
	if _, err := loadConfigWarn("", func(w string) { warnings = append(warnings, w) }); err != nil {
		t.Fatal(err)
	}
	want := "environment variable GATEHOUSE_ADMN_LISTEN sets no configuration key and is ignored (fix: did you mean GATEHOUSE_ADMIN_LISTEN?)"
	if len(warnings) != 1 || warnings[0] != want {
		t.Errorf("warnings %q\nwant [%s]", warnings, want)
	}
}

// The variable an issuer's sign_in.client_secret_env names holds the
// secret: used, not a misspelled key.
func TestSignInSecretEnvIsNotWarnedAbout(t *testing.T) {
	t.Setenv("GATEHOUSE_WEB_SECRET", "s3cret")
	t.Setenv("GATEHOUSE_SIGNIN_ISSUR", "kc")
	path := writeConfig(t, "issuers:\n  - name: kc\n    issuer_url: https://idp\n    audiences: [gatehouse]\n    sign_in:\n      client_id: web\n      client_secret_env: GATEHOUSE_WEB_SECRET\n")
	var warnings []string
	if _, err := loadConfigWarn(path, func(w string) { warnings = append(warnings, w) }); err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "GATEHOUSE_SIGNIN_ISSUR") || strings.Contains(strings.Join(warnings, " "), "GATEHOUSE_WEB_SECRET") {
		t.Fatalf("warnings %q: want one, for GATEHOUSE_SIGNIN_ISSUR only", warnings)
	}
}
