package testenv

import (
	"fmt"
	"github.com/pecarchive/pecarchive/internal/procstat"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// setDeathSignal makes the kernel kill the server when the test binary dies, so a test that
// times out or crashes leaves no server behind.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// lockFile takes an exclusive lock on path (created if missing) until unlock is called.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// Pause freezes the server process (SIGSTOP): connections are accepted by the kernel but never
// answered, as with a hung server. Resume undoes it.
// It returns once the kernel reports the process stopped, so a request sent afterwards is sure
// to meet a hung server.
func (s *S3Server) Pause() error {
	if err := s.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("%s not running", s.Kind)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		st, err := procstat.Read(cmd.Process.Pid)
		if err != nil {
			return err
		}
		if st.Stopped() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not stop after SIGSTOP", s.Kind)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Resume continues a paused server (SIGCONT).
func (s *S3Server) Resume() error { return s.signal(syscall.SIGCONT) }

// CPUTime returns the CPU time (user+system) the server process used so far, read from
// /proc/PID/stat, for benchmarks that report the server's cost per operation.
func (s *S3Server) CPUTime() (time.Duration, error) {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		return 0, fmt.Errorf("%s not running", s.Kind)
	}
	st, err := procstat.Read(cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	return st.CPU, nil
}
