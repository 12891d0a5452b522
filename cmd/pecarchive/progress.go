package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progressBar draws import's progress on one terminal line: the share of the input's bytes
// handled, the messages and the rate. Its methods do nothing on a nil *progressBar.
type progressBar struct {
	w           io.Writer
	files       int
	total, done int64
	start       time.Time
	drawn       bool
}

func newProgressBar(w io.Writer) *progressBar { return &progressBar{w: w, start: time.Now()} }

func (p *progressBar) setTotal(files int, bytes int64) {
	if p != nil {
		p.files, p.total = files, bytes
	}
}

func (p *progressBar) add(n int64) {
	if p != nil {
		p.done += n
	}
}

func (p *progressBar) draw(sum importSummary) {
	if p == nil {
		return
	}
	const width = 30
	frac := 1.0
	if p.total > 0 {
		frac = min(1, float64(p.done)/float64(p.total))
	}
	n := int(frac * width)
	rate := float64(sum.Messages) / max(time.Since(p.start).Seconds(), 0.001)
	fmt.Fprintf(p.w, "\rimport [%s%s] %3.0f%% of %s in %d files: %d messages (%d new, %d already, %d refused), %.0f/s\x1b[K",
		strings.Repeat("#", n), strings.Repeat("-", width-n), 100*frac, byteSize(p.total), p.files,
		sum.Messages, sum.New, sum.Already, sum.Refused, rate)
	p.drawn = true
}

// clear erases the bar so that a line can be printed in its place.
func (p *progressBar) clear() {
	if p != nil && p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
