package prefetch

import (
	"time"
)

// Progress is the state of a warm-up. Blocks are counted once however many
// replicas they need; a block is done when every one of its owners holds
// it. Durations marshal to JSON as nanoseconds.
type Progress struct {
	Files     int `json:"files"`      // regular files in the plan
	FilesDone int `json:"files_done"` // files whose every block is done

	Blocks        int `json:"blocks"`         // blocks in the plan
	BlocksDone    int `json:"blocks_done"`    // held by all their owners: BlocksCached + BlocksFetched
	BlocksCached  int `json:"blocks_cached"`  // done, and no owner had to fetch them
	BlocksFetched int `json:"blocks_fetched"` // done, and some owner fetched them from the origin
	BlocksFailed  int `json:"blocks_failed"`  // given up on after the retries

	Bytes       int64 `json:"bytes"`        // bytes of the plan's blocks
	BytesDone   int64 `json:"bytes_done"`   // bytes of BlocksDone
	BytesFailed int64 `json:"bytes_failed"` // bytes of BlocksFailed
	// OriginBytes are the bytes owners fetched from the origin for this
	// warm-up (block sizes; each replica counted).
	OriginBytes int64 `json:"origin_bytes"`

	// Rate is BytesDone per second: over the last 10s while running, over
	// the whole run in a Result.
	Rate float64 `json:"rate_bytes_per_second"`
	// ETA is the time left at Rate, or -1 when it cannot be told yet.
	ETA     time.Duration `json:"eta"`
	Elapsed time.Duration `json:"elapsed"`
}

// Remaining is the bytes neither done nor failed.
func (p Progress) Remaining() int64 { return p.Bytes - p.BytesDone - p.BytesFailed }

// Result is the outcome of a run.
type Result struct {
	Progress
	// Failed are the blocks given up on, in plan order.
	Failed []FailedBlock `json:"failed"`
}

// FailedBlock is a block a run gave up on.
type FailedBlock struct {
	Key      string   `json:"key"`
	Size     int64    `json:"size"`
	Owners   []string `json:"owners"`   // peer addresses of its owners when it was last tried
	Attempts int      `json:"attempts"` // rounds of calls that failed
	Error    string   `json:"error"`    // the last error, naming the node
}

// rateWindow is the span Progress.Rate is measured over while running.
const rateWindow = 10 * time.Second

type sample struct {
	t     time.Time
	bytes int64
}

// rateMeter measures the rate of a growing byte count over a sliding
// window.
type rateMeter struct {
	samples []sample
}

func (m *rateMeter) add(t time.Time, bytes int64) {
	m.samples = append(m.samples, sample{t, bytes})
	// Keep one sample at or before the window's start.
	i := 0
	for i+1 < len(m.samples) && !m.samples[i+1].t.After(t.Add(-rateWindow)) {
		i++
	}
	m.samples = m.samples[i:]
}

// rate is bytes per second between the oldest sample kept and the newest.
func (m *rateMeter) rate() float64 {
	if len(m.samples) < 2 {
		return 0
	}
	a, b := m.samples[0], m.samples[len(m.samples)-1]
	d := b.t.Sub(a.t)
	if d <= 0 {
		return 0
	}
	return float64(b.bytes-a.bytes) / d.Seconds()
}

// eta returns the time to move remaining bytes at rate, or -1.
func eta(remaining int64, rate float64) time.Duration {
	switch {
	case remaining <= 0:
		return 0
	case rate <= 0:
		return -1
	}
	return time.Duration(float64(remaining) / rate * float64(time.Second)).Round(time.Second)
}

// emit calls OnProgress if ProgressInterval has passed (or force).
func (r *run) emit(force bool) {
	now := r.clock.Now()
	if !force && now.Sub(r.lastEmit) < r.o.ProgressInterval {
		return
	}
	r.lastEmit = now
	p := r.prog
	p.Elapsed = now.Sub(r.start)
	r.meter.add(now, p.BytesDone)
	p.Rate = r.meter.rate()
	p.ETA = eta(p.Remaining(), p.Rate)
	if r.o.OnProgress != nil {
		r.o.OnProgress(p)
	}
}

// result is the run's Result; it also goes to OnProgress.
func (r *run) result() *Result {
	now := r.clock.Now()
	p := r.prog
	p.Elapsed = now.Sub(r.start)
	if p.Elapsed > 0 {
		p.Rate = float64(p.BytesDone) / p.Elapsed.Seconds()
	}
	p.ETA = eta(p.Remaining(), p.Rate)
	res := &Result{Progress: p, Failed: []FailedBlock{}}
	for _, b := range r.blocks {
		if b.state == stFailed {
			res.Failed = append(res.Failed, FailedBlock{Key: b.key, Size: b.size, Owners: b.owners, Attempts: b.attempts, Error: b.lastErr})
		}
	}
	if r.o.OnProgress != nil {
		r.o.OnProgress(p)
	}
	return res
}
