package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ringcache/ringcache/pkg/prefetch"
	"github.com/ringcache/ringcache/pkg/prefetch/api/v1alpha1"
)

// run is a warm-up in progress.
type run struct {
	key      types.NamespacedName
	gen      int64
	schedule time.Time // schedule time it warms for; zero for Once
	start    time.Time // as in status.startTime (whole seconds)
	cancel   context.CancelCauseFunc
	done     chan struct{}
}

// Why the controller ends a run itself; such runs write no final status.
var (
	errStopped     = errors.New("warmup deleted or controller stopping")
	errSpecChanged = errors.New("spec changed")
	errReplaced    = errors.New("replaced by a newer scheduled run")
	errDeadline    = errors.New("deadline exceeded")
)

func (r *Reconciler) current(key types.NamespacedName) *run {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs[key]
}

// cancelRun cancels the run of key (only if it is cur, when cur is given)
// and waits for it to end.
func (r *Reconciler) cancelRun(key types.NamespacedName, cur *run, why error) {
	r.mu.Lock()
	rn := r.runs[key]
	if rn == nil || (cur != nil && rn != cur) {
		r.mu.Unlock()
		return
	}
	delete(r.runs, key)
	r.mu.Unlock()
	rn.cancel(why)
	// A safety timeout on a shutdown path, so real time: a run that
	// ignores its cancellation must not hang reconciles forever.
	select {
	case <-rn.done:
	case <-time.After(time.Minute):
		r.log.Info("a canceled warm-up did not end within a minute", "warmup", key)
	}
	r.log.Info("canceled a warm-up", "warmup", key, "why", why.Error())
}

// startRun starts a run of w (as it is now) in a goroutine.
func (r *Reconciler) startRun(w *v1alpha1.Warmup, schedule, start time.Time) {
	key := client.ObjectKeyFromObject(w)
	req := Request{Namespace: w.Namespace, Name: w.Name, Volume: w.Spec.Volume, Paths: append([]string(nil), w.Spec.Paths...),
		Replicas: max(int(w.Spec.Replicas), 1), Concurrency: int(w.Spec.Concurrency)}
	if w.Spec.Bandwidth != nil {
		req.Bandwidth = w.Spec.Bandwidth.Value()
	}
	ctx, cancel := context.WithCancelCause(r.base)
	// The deadline follows r.clock (a test advances it): a timer ends the
	// run with errDeadline, at once if the deadline is past already (a
	// resumed run).
	stopDeadline := func() bool { return false }
	if w.Spec.Deadline != nil {
		if left := w.Spec.Deadline.Duration - r.clock.Now().Sub(start); left <= 0 {
			cancel(errDeadline)
		} else {
			stopDeadline = r.clock.AfterFunc(left, func() { cancel(errDeadline) }).Stop
		}
	}
	rn := &run{key: key, gen: w.Generation, schedule: schedule, start: start, cancel: cancel, done: make(chan struct{})}
	r.mu.Lock()
	r.runs[key] = rn
	r.mu.Unlock()
	r.wg.Add(1)
	deadline := durationOf(w.Spec.Deadline)
	go func() {
		defer r.wg.Done()
		defer close(rn.done)
		r.execute(ctx, rn, req, deadline)
		r.mu.Lock()
		if r.runs[key] == rn {
			delete(r.runs, key)
		}
		r.mu.Unlock()
		stopDeadline()
		cancel(nil)
	}()
}

// ours tells whether w's status is that of run rn.
func (rn *run) ours(w *v1alpha1.Warmup) bool {
	st := &w.Status
	return st.Phase == v1alpha1.PhaseRunning && st.ObservedGeneration == rn.gen &&
		st.StartTime != nil && st.StartTime.Time.Equal(rn.start)
}

// execute runs the warm-up and writes its progress every interval and its
// outcome at the end.
func (r *Reconciler) execute(ctx context.Context, rn *run, req Request, deadline time.Duration) {
	log := r.log.WithValues("warmup", rn.key)
	log.Info("warm-up started", "volume", req.Volume, "paths", req.Paths)
	var (
		mu    sync.Mutex
		last  prefetch.Progress
		dirty bool
	)
	onProgress := func(p prefetch.Progress) {
		mu.Lock()
		last, dirty = p, true
		mu.Unlock()
	}
	stopWriter := make(chan struct{})
	writerDone := make(chan struct{})
	// The ticker is armed before Warm is called, so a test that sees the
	// warmer report progress can advance the clock to the next write.
	t := r.clock.NewTicker(r.every)
	go func() {
		defer close(writerDone)
		defer t.Stop()
		for {
			select {
			case <-stopWriter:
				return
			case <-ctx.Done():
				return
			case <-t.C():
			}
			mu.Lock()
			p, d := last, dirty
			dirty = false
			mu.Unlock()
			if !d {
				continue
			}
			err := r.updateStatus(ctx, rn.key, func(w *v1alpha1.Warmup) bool {
				if !rn.ours(w) {
					return false
				}
				setProgress(&w.Status, p, 0)
				return true
			})
			if err != nil && ctx.Err() == nil {
				log.Error(err, "write progress")
			}
		}
	}()
	out, err := r.warmer.Warm(ctx, req, onProgress)
	close(stopWriter)
	<-writerDone

	cause := context.Cause(ctx)
	if errors.Is(cause, errStopped) || errors.Is(cause, errSpecChanged) || errors.Is(cause, errReplaced) || r.base.Err() != nil {
		log.Info("warm-up canceled", "why", fmt.Sprint(cause))
		return
	}
	phase, reason, msg := v1alpha1.PhaseSucceeded, v1alpha1.ReasonSucceeded, ""
	switch {
	case errors.Is(cause, errDeadline):
		phase, reason = v1alpha1.PhaseFailed, v1alpha1.ReasonDeadlineExceeded
		msg = fmt.Sprintf("the deadline of %s passed before the warm-up ended", deadline)
		if out != nil {
			msg += fmt.Sprintf(" (%d of %d blocks done)", out.BlocksDone, out.Blocks)
		}
	case err != nil:
		phase, reason, msg = v1alpha1.PhaseFailed, reasonOf(err), err.Error()
	case out.BlocksFailed > 0:
		phase, reason = v1alpha1.PhaseFailed, v1alpha1.ReasonBlocksFailed
		msg = fmt.Sprintf("%d of %d blocks failed", out.BlocksFailed, out.Blocks)
		if len(out.Failed) > 0 {
			msg += fmt.Sprintf("; first: %s: %s", out.Failed[0].Key, out.Failed[0].Error)
		}
	default:
		msg = fmt.Sprintf("warmed %d blocks (%d fetched from the origin, %d cached already) of %d files", out.BlocksDone, out.BlocksFetched, out.BlocksCached, out.Files)
	}
	if out != nil {
		if s := out.Summary(); s != "" {
			msg += "; " + s
		}
	}
	log.Info("warm-up ended", "phase", phase, "reason", reason, "message", msg)
	// A safety bound on the last status write (real time: it only keeps a
	// dead API server from holding the run's goroutine).
	wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = r.updateStatus(wctx, rn.key, func(w *v1alpha1.Warmup) bool {
		if !rn.ours(w) {
			return false
		}
		if out != nil {
			setProgress(&w.Status, out.Progress, out.FilesFailed)
		}
		w.Status.Phase, w.Status.Message = phase, msg
		w.Status.CompletionTime = timePtr(r.clock.Now().Truncate(time.Second))
		r.setCondition(w, v1alpha1.ConditionComplete, metav1.ConditionTrue, reason, msg)
		return true
	})
	if err != nil && !apierrors.IsNotFound(err) {
		log.Error(err, "write the outcome")
	}
}
