package main

// The progress display of "cachenode warmup": a bar redrawn in place on a
// terminal, progress lines otherwise.

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/ringcache/ringcache/internal/bytesize"
	"github.com/ringcache/ringcache/pkg/prefetch"
)

// progressDisplay shows a run's progress: a bar redrawn in place on a
// terminal, or a line every interval otherwise.
type progressDisplay struct {
	w        io.Writer
	tty      bool
	fd       int
	interval time.Duration

	mu   sync.Mutex
	last prefetch.Progress
	have bool

	stop chan struct{}
	done chan struct{}
}

func newProgressDisplay(w io.Writer, interval time.Duration) *progressDisplay {
	d := &progressDisplay{w: w, interval: interval}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		d.tty, d.fd, d.interval = true, int(f.Fd()), 200*time.Millisecond
	}
	return d
}

func (d *progressDisplay) update(p prefetch.Progress) {
	d.mu.Lock()
	d.last, d.have = p, true
	d.mu.Unlock()
}

func (d *progressDisplay) start() {
	d.stop, d.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(d.done)
		// Real time on purpose: the ticker only repaints the display and
		// decides nothing.
		t := time.NewTicker(d.interval)
		defer t.Stop()
		for {
			select {
			case <-d.stop:
				return
			case <-t.C:
				d.draw(false)
			}
		}
	}()
}

// finish stops the display and shows the last progress.
func (d *progressDisplay) finish() {
	close(d.stop)
	<-d.done
	d.draw(true)
}

func (d *progressDisplay) draw(final bool) {
	d.mu.Lock()
	p, have := d.last, d.have
	d.mu.Unlock()
	if !have {
		return
	}
	if !d.tty {
		fmt.Fprintln(d.w, "progress: "+progressLine(p))
		return
	}
	width := 80
	if w, _, err := term.GetSize(d.fd); err == nil && w > 20 {
		width = w
	}
	line := progressLine(p)
	if width-len(line)-4 < 10 {
		line = compactProgressLine(p)
	}
	barWidth := min(40, width-len(line)-4) // "[", "] " and the last column stay free
	bar := ""
	if barWidth >= 10 {
		filled := int(float64(barWidth) * fraction(p.BytesDone+p.BytesFailed, p.Bytes))
		bar = "[" + strings.Repeat("=", filled) + strings.Repeat(" ", barWidth-filled) + "] "
	}
	out := bar + line
	if len(out) > width-1 {
		out = out[:width-1]
	}
	fmt.Fprintf(d.w, "\r\033[K%s", out)
	if final {
		fmt.Fprintln(d.w)
	}
}

func fraction(part, whole int64) float64 {
	if whole <= 0 {
		return 1
	}
	return min(max(float64(part)/float64(whole), 0), 1)
}

// progressLine renders p on one line.
func progressLine(p prefetch.Progress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%5.1f%%  %d/%d blocks  %s/%s  %d/%d files",
		100*fraction(p.BytesDone, p.Bytes), p.BlocksDone, p.Blocks,
		bytesize.Format(p.BytesDone), bytesize.Format(p.Bytes), p.FilesDone, p.Files)
	progressTail(&b, p, "  ")
	return b.String()
}

// compactProgressLine is progressLine for narrow terminals.
func compactProgressLine(p prefetch.Progress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%.1f%% %d/%d blocks %s", 100*fraction(p.BytesDone, p.Bytes), p.BlocksDone, p.Blocks, bytesize.Format(p.BytesDone))
	progressTail(&b, p, " ")
	return b.String()
}

// progressTail appends failed blocks, the rate and the ETA, each after sep.
func progressTail(b *strings.Builder, p prefetch.Progress, sep string) {
	if p.BlocksFailed > 0 {
		fmt.Fprintf(b, "%s%d failed", sep, p.BlocksFailed)
	}
	fmt.Fprintf(b, "%s%s/s", sep, bytesize.Format(int64(p.Rate)))
	switch {
	case p.Remaining() == 0:
	case p.ETA < 0:
		b.WriteString(sep + "ETA ?")
	default:
		fmt.Fprintf(b, "%sETA %s", sep, p.ETA)
	}
}
