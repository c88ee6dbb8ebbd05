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
// Schedules, start and completion times, run deadlines and progress
// writes follow Options.Clock (a clock.Clock), so tests advance a fake
// one. See docs/warmup.md for the semantics of schedules, lead times,
// deadlines, missed schedules and overlapping runs.
package controller

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/ringcache/ringcache/pkg/clock"
	"github.com/ringcache/ringcache/pkg/prefetch/api/v1alpha1"
)

// Reconciler reconciles Warmups. Create it with New.
type Reconciler struct {
	client client.Client // writes (and the manager's cache)
	reader client.Reader // fresh reads from the API server
	warmer Warmer
	clock  clock.Clock
	every  time.Duration
	log    logr.Logger

	base context.Context // parent of every run: ends when the manager stops
	stop context.CancelFunc

	mu   sync.Mutex
	runs map[types.NamespacedName]*run
	wg   sync.WaitGroup
}

// New returns a reconciler for o; SetupWithManager registers it.
func New(o Options) (*Reconciler, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	base, stop := context.WithCancel(context.Background())
	return &Reconciler{warmer: o.Warmer, clock: o.Clock, every: o.StatusInterval, base: base, stop: stop,
		runs: map[types.NamespacedName]*run{}, log: logr.Discard()}, nil
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
