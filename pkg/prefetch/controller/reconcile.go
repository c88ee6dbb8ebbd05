package controller

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ringcache/ringcache/pkg/prefetch"
	"github.com/ringcache/ringcache/pkg/prefetch/api/v1alpha1"
)

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
