// Package samples locates the shared PEC sample messages (../shared/pec-samples next to the
// repository) for tests. The samples are never copied into this repository; where the folder is
// absent, tests that need it are skipped with a clear message.
package samples

import (
	"os"
	"path/filepath"
	"testing"
)

// Root returns the repository root (the directory holding go.mod), or "" if not found.
func Root() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Dir returns the samples directory, or "" when it does not exist. PECARCHIVE_SAMPLES overrides it.
func Dir() string {
	if d := os.Getenv("PECARCHIVE_SAMPLES"); d != "" {
		return d
	}
	root := Root()
	if root == "" {
		return ""
	}
	d := filepath.Join(root, "..", "shared", "pec-samples")
	if st, err := os.Stat(d); err != nil || !st.IsDir() {
		return ""
	}
	return filepath.Clean(d)
}

// Path returns the path of a sample (relative to the samples directory), skipping the test when
// the samples directory is absent.
func Path(tb testing.TB, rel string) string {
	tb.Helper()
	d := Dir()
	if d == "" {
		tb.Skip("samples: ../shared/pec-samples not found next to the repository; skipping test that needs the shared PEC samples")
	}
	return filepath.Join(d, rel)
}

// Read returns a sample's bytes, skipping the test when the samples directory is absent.
func Read(tb testing.TB, rel string) []byte {
	tb.Helper()
	b, err := os.ReadFile(Path(tb, rel))
	if err != nil {
		tb.Fatalf("samples: %v", err)
	}
	return b
}

// Glob returns the samples matching pattern (relative to the samples directory), skipping the test
// when the samples directory is absent.
func Glob(tb testing.TB, pattern string) []string {
	tb.Helper()
	d := Dir()
	if d == "" {
		tb.Skip("samples: ../shared/pec-samples not found next to the repository; skipping test that needs the shared PEC samples")
	}
	m, _ := filepath.Glob(filepath.Join(d, pattern))
	return m
}
