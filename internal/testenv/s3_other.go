//go:build !linux

package testenv

import (
	"errors"
	"os/exec"
	"time"
)

func setDeathSignal(cmd *exec.Cmd) {}

func lockFile(path string) (unlock func(), err error) { return func() {}, nil }

// Pause is not supported on this system.
func (s *S3Server) Pause() error { return errors.New("testenv: Pause needs Linux") }

// Resume is not supported on this system.
func (s *S3Server) Resume() error { return errors.New("testenv: Resume needs Linux") }

// CPUTime is not supported on this system.
func (s *S3Server) CPUTime() (time.Duration, error) {
	return 0, errors.New("testenv: CPUTime needs Linux")
}
