package evidence_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The bundle format and its verifier are importable by any Go program: no database driver, no
// S3 client, no gRPC, nothing of the services.
func TestNoServerDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/pecarchive/pecarchive/evidence", "github.com/pecarchive/pecarchive/record").CombinedOutput()
	if err != nil {
		t.Skipf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{"github.com/jackc/", "github.com/minio/", "google.golang.org/grpc", "pecarchive/services/", "pecarchive/internal/"} {
			if strings.Contains(dep, bad) {
				t.Errorf("evidence depends on %s", dep)
			}
		}
	}
}
