// Package controller is the Kubernetes controller of Warmup objects
// (ringcache.io/v1alpha1, "cachenode controller"): it runs each Warmup's
// warm-ups with the pkg/prefetch Executor in a goroutine, once or on its
// cron schedule a lead time ahead, and writes their progress to the
// Warmup's status subresource as they go.
//
// State lives in the Warmup's status (phase, schedule times, counts), read
// fresh from the API server at every reconcile; the only in-memory state
// is the set of runs in progress, so a new leader resumes a run whose
// status says Running (warming is idempotent: cached blocks cost nothing).
// Deleting a Warmup cancels its run (the reconcile of a Warmup that is
// gone cancels it; no finalizer, as a run leaves nothing to clean up).
// See docs/warmup.md for the semantics of schedules, lead times,
// deadlines, missed schedules and overlapping runs.
package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/ringcache/ringcache/pkg/prefetch"
	"github.com/ringcache/ringcache/pkg/prefetch/api/v1alpha1"
)

// Clock is the controller's time source for schedules, start and
// completion times and deadline accounting. Tests inject a fake one. (The
// executor's backoff and pacing, and the deadline timer, use real time.)
type Clock interface{ Now() time.Time }

// RealClock is the wall clock.
type RealClock struct{}

// Now implements Clock.
func (RealClock) Now() time.Time { return time.Now() }

// DefaultStatusInterval is how often a run writes its progress.
const DefaultStatusInterval = 2 * time.Second

// Reconciler reconciles Warmups. Create it with New.
type Reconciler struct {
	client client.Client // writes (and the manager's cache)
	reader client.Reader // fresh reads from the API server
	warmer Warmer
	clock  Clock
	every  time.Duration
	log    logr.Logger

	base context.Context // parent of every run: ends when the manager stops
	stop context.CancelFunc

	mu   sync.Mutex
	runs map[types.NamespacedName]*run
	wg   sync.WaitGroup
}

// Options configures a Reconciler.
type Options struct {
	Warmer Warmer
	// Clock defaults to the real clock.
	Clock Clock
	// StatusInterval is the least time between progress writes (default
	// 2s).
	StatusInterval time.Duration
}

// New returns a reconciler; SetupWithManager registers it.
func New(o Options) *Reconciler {
	if o.Clock == nil {
		o.Clock = RealClock{}
	}
	if o.StatusInterval <= 0 {
		o.StatusInterval = DefaultStatusInterval
	}
	base, stop := context.WithCancel(context.Background())
	return &Reconciler{warmer: o.Warmer, clock: o.Clock, every: o.StatusInterval, base: base, stop: stop,
		runs: map[types.NamespacedName]*run{}, log: logr.Discard()}
}

// SetupWithManager registers the controller with mgr. Runs stop when the
// manager does.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.client, r.reader = mgr.GetClient(), mgr.GetAPIReader()
	r.log = mgr.GetLogger().WithName("warmup")
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		r.Stop()
		return nil
	})); err != nil {
		return err
	}
	// Progress writes change only the status: they need no reconcile.
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Warmup{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Named("warmup").
		Complete(r)
}

// Stop cancels every run and waits for them.
func (r *Reconciler) Stop() {
	r.stop()
	r.wg.Wait()
}

// Running tells whether a run of the Warmup is in progress (for tests and
// diagnostics).
func (r *Reconciler) Running(key types.NamespacedName) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs[key] != nil
}

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

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var w v1alpha1.Warmup
	if err := r.reader.Get(ctx, req.NamespacedName, &w); err != nil {
		if apierrors.IsNotFound(err) {
			r.cancelRun(req.NamespacedName, nil, errStopped)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if w.DeletionTimestamp != nil {
		r.cancelRun(req.NamespacedName, nil, errStopped)
		return ctrl.Result{}, nil
	}
	cur := r.current(req.NamespacedName)
	if cur != nil && cur.gen != w.Generation {
		r.cancelRun(req.NamespacedName, cur, errSpecChanged)
		cur = nil
	}
	now := r.clock.Now()
	old := w.Status.DeepCopy()
	st := &w.Status

	sched, reason, err := validateSpec(&w.Spec)
	if err != nil {
		r.cancelRun(req.NamespacedName, nil, errSpecChanged)
		st.Phase, st.Message, st.ObservedGeneration = v1alpha1.PhaseFailed, "invalid spec: "+err.Error(), w.Generation
		st.NextScheduleTime, st.NextStartTime = nil, nil
		r.setCondition(&w, v1alpha1.ConditionSpecValid, metav1.ConditionFalse, reason, err.Error())
		return ctrl.Result{}, r.writeStatus(ctx, &w, old)
	}
	r.setCondition(&w, v1alpha1.ConditionSpecValid, metav1.ConditionTrue, v1alpha1.ReasonValid, "the spec is valid")

	if sched == nil {
		return r.reconcileOnce(ctx, &w, old, cur, now)
	}
	return r.reconcileSchedule(ctx, &w, old, sched, cur, now)
}

// reconcileOnce runs a Once Warmup once per generation.
func (r *Reconciler) reconcileOnce(ctx context.Context, w *v1alpha1.Warmup, old *v1alpha1.WarmupStatus, cur *run, now time.Time) (ctrl.Result, error) {
	st := &w.Status
	st.NextScheduleTime, st.NextStartTime = nil, nil
	sameGen := st.ObservedGeneration == w.Generation
	switch {
	case cur != nil, sameGen && (st.Phase == v1alpha1.PhaseSucceeded || st.Phase == v1alpha1.PhaseFailed):
		return ctrl.Result{}, r.writeStatus(ctx, w, old)
	case sameGen && st.Phase == v1alpha1.PhaseRunning && st.StartTime != nil:
		// Running, but not here: a previous leader's run. Resume it.
		if err := r.writeStatus(ctx, w, old); err != nil {
			return ctrl.Result{}, err
		}
		r.startRun(w, time.Time{}, st.StartTime.Time)
		return ctrl.Result{}, nil
	}
	start := now.Truncate(time.Second)
	r.markRunning(w, start, "warming")
	if err := r.writeStatus(ctx, w, old); err != nil {
		return ctrl.Result{}, err
	}
	r.startRun(w, time.Time{}, start)
	return ctrl.Result{}, nil
}

// reconcileSchedule starts a scheduled Warmup's runs leadTime ahead of its
// schedule times, skipping and recording missed and forbidden ones.
func (r *Reconciler) reconcileSchedule(ctx context.Context, w *v1alpha1.Warmup, old *v1alpha1.WarmupStatus, sched interface{ Next(time.Time) time.Time }, cur *run, now time.Time) (ctrl.Result, error) {
	st := &w.Status
	p := w.Spec.Policy
	lead := durationOf(p.LeadTime)
	newGen := st.ObservedGeneration != w.Generation
	st.ObservedGeneration = w.Generation

	// The first schedule time considered is the first one after the
	// controller saw this generation of the spec: a Warmup created at
	// 07:50 for "0 8 * * *" with a 20m lead starts at once (10m late, see
	// startingDeadline), one created at 08:01 waits for tomorrow.
	var next time.Time
	if st.NextScheduleTime == nil || newGen {
		next = sched.Next(now)
	} else {
		next = st.NextScheduleTime.Time
	}
	if newGen && cur == nil {
		// A new spec (or a fixed invalid one) waits for its first start.
		st.Phase, st.Message = v1alpha1.PhasePending, "waiting for the first start time"
	}

	latest, missed, next := dueTimes(sched, next, lead, now)
	startNow, resume := false, false
	if !latest.IsZero() {
		st.LastScheduleTime = timePtr(latest)
		startAt := latest.Add(-lead)
		if missed > 0 {
			r.skip(w, v1alpha1.ReasonMissedSchedule, int64(missed), fmt.Sprintf(
				"%d schedule time(s) before %s were missed (the controller was not running or a newer one was due too)", missed, stamp(latest)))
		}
		late := now.Sub(startAt)
		switch {
		case p.StartingDeadline != nil && late > p.StartingDeadline.Duration:
			r.skip(w, v1alpha1.ReasonMissedSchedule, 1, fmt.Sprintf(
				"the run for %s (start %s) was skipped: %s late, past startingDeadline %s",
				stamp(latest), stamp(startAt), late.Round(time.Second), p.StartingDeadline.Duration))
		case cur != nil && p.ConcurrencyPolicy != v1alpha1.ReplaceConcurrent:
			r.skip(w, v1alpha1.ReasonConcurrencyForbidden, 1, fmt.Sprintf(
				"the run for %s was skipped: the run for %s (started %s) is still going (concurrencyPolicy Forbid)",
				stamp(latest), stamp(cur.schedule), stamp(cur.start)))
		default:
			if cur != nil {
				r.cancelRun(cur.key, cur, errReplaced)
				cur = nil
			}
			startNow = true
		}
	} else if cur == nil && !newGen && st.Phase == v1alpha1.PhaseRunning && st.StartTime != nil && st.LastScheduleTime != nil {
		resume = true // a previous leader's run
	}
	if next.IsZero() {
		st.NextScheduleTime, st.NextStartTime = nil, nil
	} else {
		st.NextScheduleTime, st.NextStartTime = timePtr(next), timePtr(next.Add(-lead))
	}
	start := now.Truncate(time.Second)
	switch {
	case startNow:
		r.markRunning(w, start, "warming for the schedule time "+stamp(latest))
	case st.Phase == "":
		st.Phase = v1alpha1.PhasePending
		st.Message = "waiting for the first start time"
	}
	if err := r.writeStatus(ctx, w, old); err != nil {
		return ctrl.Result{}, err
	}
	switch {
	case startNow:
		r.startRun(w, latest, start)
	case resume:
		r.startRun(w, st.LastScheduleTime.Time, st.StartTime.Time)
	}
	if next.IsZero() {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: max(next.Add(-lead).Sub(now), time.Second)}, nil
}

// skip records skipped schedule times.
func (r *Reconciler) skip(w *v1alpha1.Warmup, reason string, n int64, msg string) {
	w.Status.SkippedRuns += n
	r.setCondition(w, v1alpha1.ConditionScheduleSkipped, metav1.ConditionTrue, reason, msg)
	r.log.Info("skipped a scheduled warm-up", "warmup", client.ObjectKeyFromObject(w), "reason", reason, "message", msg)
}

// markRunning resets the status for a new run starting at start.
func (r *Reconciler) markRunning(w *v1alpha1.Warmup, start time.Time, msg string) {
	st := &w.Status
	st.Phase, st.Message, st.ObservedGeneration = v1alpha1.PhaseRunning, msg, w.Generation
	st.StartTime, st.CompletionTime = timePtr(start), nil
	setProgress(st, prefetch.Progress{ETA: -1}, 0)
	st.Progress = ""
	r.setCondition(w, v1alpha1.ConditionComplete, metav1.ConditionFalse, v1alpha1.ReasonRunning, msg)
}

func (r *Reconciler) setCondition(w *v1alpha1.Warmup, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&w.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: w.Generation,
		LastTransitionTime: metav1.NewTime(r.clock.Now().Truncate(time.Second)),
	})
}

// writeStatus writes w's status if it changed from old (optimistically:
// a conflict is returned and the reconcile retried).
func (r *Reconciler) writeStatus(ctx context.Context, w *v1alpha1.Warmup, old *v1alpha1.WarmupStatus) error {
	boundMessages(&w.Status)
	if equality.Semantic.DeepEqual(&w.Status, old) {
		return nil
	}
	return r.putStatus(ctx, w)
}

// putStatus writes w's status, its messages bounded (boundMessages). If
// the API server refuses it as invalid anyway, it is written again with
// minimal messages, so that a phase change (a run ending) is never lost
// to a message: a Warmup left Running would never run again.
func (r *Reconciler) putStatus(ctx context.Context, w *v1alpha1.Warmup) error {
	boundMessages(&w.Status)
	err := r.client.Status().Update(ctx, w)
	if !apierrors.IsInvalid(err) {
		return err
	}
	r.log.Error(err, "status refused; writing it with minimal messages", "warmup", client.ObjectKeyFromObject(w), "message", w.Status.Message)
	minimalMessages(&w.Status)
	return r.client.Status().Update(ctx, w)
}

// updateStatus applies mutate to a fresh copy of the Warmup's status and
// writes it, retrying on conflicts. mutate returns false to write nothing.
func (r *Reconciler) updateStatus(ctx context.Context, key types.NamespacedName, mutate func(*v1alpha1.Warmup) bool) error {
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		var w v1alpha1.Warmup
		if err := r.reader.Get(ctx, key, &w); err != nil {
			return err
		}
		if !mutate(&w) {
			return nil
		}
		return r.putStatus(ctx, &w)
	})
}

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
	rctx := ctx
	if w.Spec.Deadline != nil {
		left := w.Spec.Deadline.Duration - r.clock.Now().Sub(start)
		var c context.CancelFunc
		rctx, c = context.WithTimeoutCause(ctx, max(left, 0), errDeadline)
		inner := cancel
		cancel = func(err error) { inner(err); c() }
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
		r.execute(rctx, rn, req, deadline)
		r.mu.Lock()
		if r.runs[key] == rn {
			delete(r.runs, key)
		}
		r.mu.Unlock()
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
	go func() {
		defer close(writerDone)
		t := time.NewTicker(r.every)
		defer t.Stop()
		for {
			select {
			case <-stopWriter:
				return
			case <-ctx.Done():
				return
			case <-t.C:
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

// setProgress copies p into st.
func setProgress(st *v1alpha1.WarmupStatus, p prefetch.Progress, filesFailed int) {
	st.FilesTotal, st.FilesDone, st.FilesFailed = int64(p.Files), int64(p.FilesDone), int64(filesFailed)
	st.BlocksTotal, st.BlocksDone, st.BlocksFailed = int64(p.Blocks), int64(p.BlocksDone), int64(p.BlocksFailed)
	st.CachedBlocks = int64(p.BlocksCached)
	st.BytesTotal, st.BytesDone, st.BytesFailed = p.Bytes, p.BytesDone, p.BytesFailed
	st.Rate = int64(p.Rate)
	switch {
	case p.Blocks > 0 && p.Remaining() <= 0:
		st.ETA = "0s"
	case p.ETA < 0:
		st.ETA = ""
	default:
		st.ETA = p.ETA.String()
	}
	switch {
	case p.Bytes > 0:
		st.Progress = fmt.Sprintf("%.1f%%", 100*float64(p.BytesDone)/float64(p.Bytes))
	case p.Blocks == 0 && p.Files > 0:
		st.Progress = "100.0%"
	default:
		st.Progress = ""
	}
}

func timePtr(t time.Time) *metav1.Time {
	mt := metav1.NewTime(t.UTC())
	return &mt
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
