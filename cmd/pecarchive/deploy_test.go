package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every PECARCHIVE_ setting the Kubernetes manifests give is one the commands read and document,
// and every Deployment the base defines is listed in its kustomization: a renamed or forgotten
// setting would otherwise fall back to a default silently in production.
func TestDeploySettingsKnown(t *testing.T) {
	var code strings.Builder
	srcs, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range srcs {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		code.Write(b)
	}
	known := code.String()
	setting := regexp.MustCompile(`PECARCHIVE_[A-Z0-9_]+`)
	root := filepath.Join("..", "..", "deploy", "k8s")
	var files []string
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".yaml") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	kust, err := os.ReadFile(filepath.Join(root, "base", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	deployments := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range setting.FindAllString(string(b), -1) {
			// Settings named by prefix (clientcreds.go) are listed in the commands' doc comments.
			if !regexp.MustCompile(`\b` + name + `\b`).MatchString(known) {
				t.Errorf("%s: %s is read or documented by no command", f, name)
			}
		}
		// Secret files belong to root: a service running as another user reads them only
		// through its fsGroup.
		if strings.Contains(string(b), "runAsUser:") && strings.Contains(string(b), "secretName:") && !strings.Contains(string(b), "fsGroup:") {
			t.Errorf("%s mounts secrets for a non-root user without an fsGroup: it cannot read them", f)
		}
		if strings.Contains(string(b), "kind: Deployment") {
			deployments++
			if filepath.Dir(f) == filepath.Join(root, "base") && !strings.Contains(string(kust), filepath.Base(f)) {
				t.Errorf("%s is not in base/kustomization.yaml", f)
			}
		}
	}
	if deployments < 3 {
		t.Errorf("%d Deployments under %s, want archive, ingest and query", deployments, root)
	}
}
