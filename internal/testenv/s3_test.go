package testenv_test

import (
	"net/http"
	"os"
	"regexp"
	"testing"

	"github.com/pecarchive/pecarchive/internal/testenv"
)

func TestS3Servers(t *testing.T) {
	for _, kind := range []string{testenv.VersityGW, testenv.MinIO} {
		t.Run(kind, func(t *testing.T) {
			s, err := testenv.StartS3(kind, "")
			if err != nil {
				t.Fatal(err)
			}
			get := func() error {
				resp, err := http.Get("http://" + s.Endpoint + "/")
				if err == nil {
					resp.Body.Close()
				}
				return err
			}
			if err := get(); err != nil {
				t.Fatalf("server not answering: %v", err)
			}
			s.Stop()
			if err := get(); err == nil {
				t.Fatal("server still answering after Stop")
			}
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			if err := get(); err != nil {
				t.Fatalf("server not answering after restart: %v", err)
			}
			s.Close()
			if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
				t.Fatalf("directory %s left behind: %v", s.Dir, err)
			}
		})
	}
}

func TestBucket(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)
	seen := map[string]bool{}
	for _, p := range []string{"TestX/sub_test", "", "---", "a very long prefix that goes on and on and on and on"} {
		b := testenv.Bucket(p)
		if !valid.MatchString(b) || seen[b] {
			t.Fatalf("Bucket(%q) = %q", p, b)
		}
		seen[b] = true
	}
}
