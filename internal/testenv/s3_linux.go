package testenv

import (
	"os"
	"os/exec"
	"syscall"
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
func (s *S3Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *S3Server) Resume() error { return s.signal(syscall.SIGCONT) }
