package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// isTerminal reports whether w is a character device (a terminal): the
// progress bar's carriage returns would litter a file or pipe.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressBar draws a one-line bar on a terminal stream, at most five times
// a second.
type progressBar struct {
	w     io.Writer
	unit  string
	start time.Time
	last  time.Time
	drawn bool
}

func newProgressBar(w io.Writer, unit string) *progressBar {
	return &progressBar{w: w, unit: unit, start: time.Now()}
}

func (p *progressBar) update(done, total int64) {
	now := time.Now()
	if done < total && now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last = now
	frac := 0.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	const width = 30
	fill := int(frac * width)
	el := now.Sub(p.start).Seconds()
	eta := "?"
	if frac > 0 {
		eta = fmt.Sprintf("%.0fs", el/frac-el)
	}
	fmt.Fprintf(p.w, "\r[%s%s] %5.1f%% %d/%d %s  %.0fs elapsed, eta %s ",
		strings.Repeat("#", fill), strings.Repeat(".", width-fill), frac*100, done, total, p.unit, el, eta)
	p.drawn = true
}

func (p *progressBar) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
