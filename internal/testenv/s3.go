// Package testenv starts real servers for tests on throw-away loopback ports and directories.
//
// S3 (this file): [StartVersityGW] and [StartMinIO] start a server for one test (stopped on
// t.Cleanup); [SharedS3] starts one per test binary and per kind, to be stopped by [CloseShared]
// from TestMain:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		testenv.CloseShared()
//		os.Exit(code)
//	}
//
// The binaries come from scripts/tools.sh (its bin directory, installed on first use; cached).
// On Linux a server is killed with the test binary even when CloseShared does not run.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 server kinds.
const (
	VersityGW = "versitygw"
	MinIO     = "minio"
)

// S3Server is a running (or stopped) S3 server process owned by the test.
type S3Server struct {
	Kind      string // VersityGW or MinIO
	Endpoint  string // host:port on 127.0.0.1, plain HTTP
	AccessKey string
	SecretKey string
	Region    string
	// Dir holds everything the server stores. For versitygw (posix backend), an object's
	// current version is the plain file DataDir/<bucket>/<key>.
	Dir     string
	DataDir string

	bin     string
	ownsDir bool

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd exited
	out  *lockedWriter
}

var (
	sharedMu sync.Mutex
	shared   = map[string]*S3Server{}
	binMu    sync.Mutex
)

// StartVersityGW starts a versitygw (posix backend, versioning enabled so Object Lock works) for
// this test; it is stopped and its directory removed on t.Cleanup.
func StartVersityGW(t testing.TB) *S3Server { return startForTest(t, VersityGW) }

// StartMinIO starts a single-drive MinIO for this test; stopped and removed on t.Cleanup.
func StartMinIO(t testing.TB) *S3Server { return startForTest(t, MinIO) }

func startForTest(t testing.TB, kind string) *S3Server {
	t.Helper()
	s, err := StartS3(kind, "")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// SharedS3 returns the test binary's one server of that kind, starting it on first use. Call
// [CloseShared] from TestMain after m.Run. Don't Stop a shared server: other tests use it.
func SharedS3(t testing.TB, kind string) *S3Server {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if s := shared[kind]; s != nil {
		return s
	}
	s, err := StartS3(kind, "")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	shared[kind] = s
	return s
}

// CloseShared stops every server started by [SharedS3] and [SharedDovecot] and removes their
// directories.
func CloseShared() {
	closeSharedDovecot()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	for k, s := range shared {
		s.Close()
		delete(shared, k)
	}
}

// StartS3 starts a server of kind (VersityGW or MinIO) on a free 127.0.0.1 port, storing in dir
// (a new temporary directory, removed by Close, when dir is ""). It returns once the server
// answers HTTP. The caller must Close it.
func StartS3(kind, dir string) (*S3Server, error) {
	if kind != VersityGW && kind != MinIO {
		return nil, fmt.Errorf("unknown S3 server kind %q", kind)
	}
	bin, err := ToolBinary(kind)
	if err != nil {
		return nil, err
	}
	s := &S3Server{Kind: kind, Region: "us-east-1", bin: bin, Dir: dir}
	if s.Dir == "" {
		if s.Dir, err = os.MkdirTemp("", "pecarchive-"+kind+"-"); err != nil {
			return nil, err
		}
		s.ownsDir = true
	}
	s.AccessKey = "test" + randomHex(8)
	s.SecretKey = randomHex(20)
	s.DataDir = filepath.Join(s.Dir, "data")
	// The port is picked by binding :0 and closing; another process may take it first, so retry.
	for attempt := 0; ; attempt++ {
		port, perr := freePort()
		if perr != nil {
			s.removeDir()
			return nil, perr
		}
		s.Endpoint = fmt.Sprintf("127.0.0.1:%d", port)
		err = s.Start()
		if err == nil {
			return s, nil
		}
		if attempt == 4 {
			s.removeDir()
			return nil, err
		}
	}
}

// Start (re)starts the server process on its endpoint and directory, e.g. after Stop.
func (s *S3Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("%s already running", s.Kind)
	}
	var cmd *exec.Cmd
	switch s.Kind {
	case VersityGW:
		for _, d := range []string{s.DataDir, filepath.Join(s.Dir, "versions")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		cmd = exec.Command(s.bin, "--access", s.AccessKey, "--secret", s.SecretKey,
			"--region", s.Region, "--port", s.Endpoint, "--quiet", "--keep-alive",
			"posix", "--versioning-dir", filepath.Join(s.Dir, "versions"), s.DataDir)
		cmd.Env = filteredEnv()
	case MinIO:
		if err := os.MkdirAll(s.DataDir, 0o755); err != nil {
			return err
		}
		cmd = exec.Command(s.bin, "server", "--quiet", "--address", s.Endpoint, s.DataDir)
		cmd.Env = append(filteredEnv(),
			"MINIO_ROOT_USER="+s.AccessKey, "MINIO_ROOT_PASSWORD="+s.SecretKey,
			"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_REGION="+s.Region,
			"MINIO_CONFIG_ENV_FILE=", "HOME="+s.Dir)
	}
	s.out = &lockedWriter{}
	cmd.Stdout = s.out
	cmd.Stderr = s.out
	cmd.Dir = s.Dir
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.Kind, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	if err := s.waitReady(done, 60*time.Second); err != nil {
		s.stopLocked()
		return err
	}
	return nil
}

// waitReady polls with a signed ListBuckets until it succeeds: MinIO's health probe says ready
// while S3 requests still get 503 XMinioServerNotInitialized for a moment.
func (s *S3Server) waitReady(done chan struct{}, limit time.Duration) error {
	c, err := minio.New(s.Endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region:     s.Region,
		MaxRetries: 1,
	})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-done:
			return fmt.Errorf("%s exited during start: %s", s.Kind, s.Log())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.ListBuckets(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v (%v): %s", s.Kind, limit, err, s.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server process, keeping its directory, so Start can bring it back.
func (s *S3Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *S3Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}

func (s *S3Server) signal(sig os.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return fmt.Errorf("%s not running", s.Kind)
	}
	return s.cmd.Process.Signal(sig)
}

// Close stops the server and removes its directory if StartS3 created it.
func (s *S3Server) Close() {
	s.Stop()
	s.removeDir()
}

func (s *S3Server) removeDir() {
	if s.ownsDir {
		os.RemoveAll(s.Dir)
	}
}

// Log returns what the server printed (for failure messages).
func (s *S3Server) Log() string {
	if s.out == nil {
		return ""
	}
	s.out.mu.Lock()
	b := s.out.w.String()
	s.out.mu.Unlock()
	if len(b) > 4000 {
		b = "..." + b[len(b)-4000:]
	}
	return strings.TrimSpace(b)
}

// Bucket returns a new bucket name, unique across tests and runs (S3 rules: lower case, 3-63).
func Bucket(prefix string) string {
	prefix = strings.ToLower(prefix)
	var b strings.Builder
	for _, r := range prefix {
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	p := strings.Trim(b.String(), "-")
	if len(p) > 40 {
		p = strings.Trim(p[:40], "-")
	}
	if p == "" {
		p = "test"
	}
	return p + "-" + randomHex(6)
}

// ToolBinary returns the path of a tool installed by `scripts/tools.sh NAME`, which builds it
// on first use (can take minutes) and is a quick no-op once the pinned version is cached. Calls
// from concurrently running test binaries are serialized with a lock file (on Linux).
func ToolBinary(name string) (string, error) {
	binMu.Lock()
	defer binMu.Unlock()
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, "scripts", "tools.sh")
	out, err := exec.Command(script, "--print-dir").Output()
	if err != nil {
		return "", fmt.Errorf("%s --print-dir: %w", script, err)
	}
	dir := strings.TrimSpace(string(out))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(filepath.Join(dir, ".testenv-"+name+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	cmd := exec.Command(script, name)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", script, name, err, buf.String())
	}
	bin := filepath.Join(dir, name)
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s %s did not install %s", script, name, bin)
	}
	return bin, nil
}

// repoRoot finds the module root (the directory holding scripts/tools.sh) above the working
// directory, which go test sets to the package directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "tools.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("scripts/tools.sh not found above the working directory")
		}
		dir = parent
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// filteredEnv is the environment without variables that would reconfigure the servers.
func filteredEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "MINIO_") || strings.HasPrefix(k, "VGW_") || strings.HasPrefix(k, "ROOT_") ||
			k == "WEBHOOK" || k == "LOGFILE" || k == "MC_HOST" || strings.HasPrefix(k, "AWS_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

type lockedWriter struct {
	mu sync.Mutex
	w  bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w.Len() > 1<<20 { // keep memory bounded on chatty servers
		return len(p), nil
	}
	return l.w.Write(p)
}
