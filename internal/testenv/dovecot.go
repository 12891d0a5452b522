package testenv

// Dovecot (this file): [StartDovecot] starts a real Dovecot IMAP server for one test and
// [SharedDovecot] one per test binary (stopped by [CloseShared]), both through the project's
// scripts/dovecot.sh: loopback only, plain IMAP with STARTTLS on one port and implicit TLS on
// another, a throw-away CA, passwd file and Maildirs in a temporary directory. Where Dovecot is
// missing the script installs it (apt-get); a test is skipped, loudly, only where that is
// impossible.

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/client"
)

// Dovecot is a running Dovecot owned by the test binary.
type Dovecot struct {
	Host    string // 127.0.0.1
	Port    int    // plain IMAP and STARTTLS
	TLSPort int    // implicit TLS
	CAFile  string // the CA that signed the server certificate (for 127.0.0.1 and localhost)
	Dir     string
	Conf    string // its dovecot.conf, for doveadm -c

	script  string
	ownsDir bool
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	out     *lockedWriter
}

var (
	sharedDovecotMu sync.Mutex
	sharedDovecot   *Dovecot
	dovecotInstall  sync.Once
	dovecotSkip     string // why Dovecot cannot run here, once known
)

// StartDovecot starts a Dovecot for this test, stopped and removed on t.Cleanup.
func StartDovecot(t testing.TB) *Dovecot {
	t.Helper()
	d, err := startDovecotOrSkip(t)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(d.Close)
	return d
}

// SharedDovecot returns the test binary's one Dovecot, starting it on first use; [CloseShared]
// stops it. Tests sharing it use users of their own ([Dovecot.AddUser]).
func SharedDovecot(t testing.TB) *Dovecot {
	t.Helper()
	sharedDovecotMu.Lock()
	defer sharedDovecotMu.Unlock()
	if sharedDovecot != nil {
		return sharedDovecot
	}
	d, err := startDovecotOrSkip(t)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	sharedDovecot = d
	return d
}

func closeSharedDovecot() {
	sharedDovecotMu.Lock()
	defer sharedDovecotMu.Unlock()
	if sharedDovecot != nil {
		sharedDovecot.Close()
		sharedDovecot = nil
	}
}

func startDovecotOrSkip(t testing.TB) (*Dovecot, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	script := filepath.Join(root, "scripts", "dovecot.sh")
	dovecotInstall.Do(func() {
		if out, err := exec.Command(script, "install").CombinedOutput(); err != nil {
			dovecotSkip = fmt.Sprintf("%v: %s", err, strings.TrimSpace(string(out)))
		}
	})
	if dovecotSkip != "" {
		t.Skipf("\n*** SKIPPED: DOVECOT CANNOT BE INSTALLED HERE (%s): the IMAP tests did not run ***", dovecotSkip)
	}
	dir, err := os.MkdirTemp("", "pecarchive-dovecot-")
	if err != nil {
		return nil, err
	}
	d := &Dovecot{Host: "127.0.0.1", Dir: dir, Conf: filepath.Join(dir, "dovecot.conf"),
		CAFile: filepath.Join(dir, "tls", "ca.crt"), script: script, ownsDir: true}
	if d.Port, err = freePort(); err != nil {
		return nil, err
	}
	if d.TLSPort, err = freePort(); err != nil {
		return nil, err
	}
	if err := d.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return d, nil
}

// Start (re)starts the server on its ports and directory, e.g. after Stop. It returns once the
// server greets on both ports.
func (d *Dovecot) Start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd != nil {
		return fmt.Errorf("dovecot already running")
	}
	cmd := exec.Command(d.script, "run", d.Dir, strconv.Itoa(d.Port), strconv.Itoa(d.TLSPort))
	d.out = &lockedWriter{}
	cmd.Stdout, cmd.Stderr = d.out, d.out
	setDeathSignal(cmd)
	// Children that outlive a killed master keep the output pipe open; don't wait for them.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start dovecot: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	d.cmd, d.done = cmd, done
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			d.cmd = nil
			return fmt.Errorf("dovecot exited during start: %s", d.Log())
		default:
		}
		if greets(d.addr(d.Port)) && greets(d.addr(d.TLSPort)) {
			return nil
		}
		if time.Now().After(deadline) {
			d.stopLocked()
			return fmt.Errorf("dovecot not ready after a minute: %s", d.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// greets reports whether something accepts TCP connections at addr (the greeting itself is read
// by clients; an implicit-TLS port only answers after a handshake).
func greets(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func (d *Dovecot) addr(port int) string { return net.JoinHostPort(d.Host, strconv.Itoa(port)) }

// Addr is host:port of the plain (STARTTLS) listener; TLSAddr of the implicit-TLS one.
func (d *Dovecot) Addr() string    { return d.addr(d.Port) }
func (d *Dovecot) TLSAddr() string { return d.addr(d.TLSPort) }

// Stop kills the server (keeping its directory), so Start can bring it back.
func (d *Dovecot) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopLocked()
}

func (d *Dovecot) stopLocked() {
	if d.cmd == nil {
		return
	}
	// SIGTERM: the master stops its children (imap, auth, log) before it exits.
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
	d.cmd, d.done = nil, nil
	// The master's children notice it is gone and exit; its pid file would fool a later start.
	os.Remove(filepath.Join(d.Dir, "run", "master.pid"))
}

// Close stops the server and removes its directory.
func (d *Dovecot) Close() {
	d.Stop()
	if d.ownsDir {
		os.RemoveAll(d.Dir)
	}
}

// Log returns what the server wrote to its log (for failure messages).
func (d *Dovecot) Log() string {
	var b strings.Builder
	if d.out != nil {
		d.out.mu.Lock()
		b.WriteString(d.out.w.String())
		d.out.mu.Unlock()
	}
	if f, err := os.ReadFile(filepath.Join(d.Dir, "log", "dovecot.log")); err == nil {
		b.Write(f)
	}
	s := b.String()
	if len(s) > 4000 {
		s = "..." + s[len(s)-4000:]
	}
	return strings.TrimSpace(s)
}

// AddUser adds (or replaces) a user with password pass; quota is a Dovecot storage quota such as
// "10M" ("" for 1G).
func (d *Dovecot) AddUser(t testing.TB, name, pass, quota string) {
	t.Helper()
	args := []string{"user", d.Dir, name, pass}
	if quota != "" {
		args = append(args, quota)
	}
	if out, err := exec.Command(d.script, args...).CombinedOutput(); err != nil {
		t.Fatalf("testenv: dovecot user %s: %v: %s", name, err, out)
	}
}

// Doveadm runs doveadm on this server's configuration and returns its output.
func (d *Dovecot) Doveadm(args ...string) (string, error) {
	out, err := exec.Command("doveadm", append([]string{"-c", d.Conf}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("doveadm %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// TLSConfig returns a client TLS configuration trusting the server's CA.
func (d *Dovecot) TLSConfig() (*tls.Config, error) {
	pem, err := os.ReadFile(d.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", d.CAFile)
	}
	return &tls.Config{RootCAs: pool, ServerName: d.Host, MinVersion: tls.VersionTLS12}, nil
}

// Client logs in as user over implicit TLS; it is logged out on cleanup. Tests use it to fill
// mailboxes (APPEND) and to change them.
func (d *Dovecot) Client(t testing.TB, user, pass string) *client.Client {
	t.Helper()
	cfg, err := d.TLSConfig()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	c, err := client.DialTLS(d.TLSAddr(), cfg)
	if err != nil {
		t.Fatalf("testenv: dial dovecot: %v", err)
	}
	c.ErrorLog = discardLogger{}
	if err := c.Login(user, pass); err != nil {
		c.Logout()
		t.Fatalf("testenv: login %s: %v", user, err)
	}
	t.Cleanup(func() { c.Logout() })
	return c
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...interface{}) {}
func (discardLogger) Println(...interface{})        {}
