package controller

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ringcache/ringcache/pkg/prefetch"
	"github.com/ringcache/ringcache/pkg/prefetch/api/v1alpha1"
)

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
