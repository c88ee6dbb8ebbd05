package controller

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/ringcache/ringcache/pkg/prefetch/api/v1alpha1"
)

// TestPutStatusRetriesRefusedWithMinimalMessages: a status write the API
// server refuses as invalid (here, a fake refusing any message but the
// minimal one) is written again with the minimal message, the phase kept,
// instead of being dropped. (The envtest TestLongMessagesBounded covers
// the real server; this path is the defence behind the bounds.)
func TestPutStatusRetriesRefusedWithMinimalMessages(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	w := &v1alpha1.Warmup{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "w"}}
	var refused, written int
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(w).WithStatusSubresource(w).
		WithInterceptorFuncs(interceptor.Funcs{SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			if st := obj.(*v1alpha1.Warmup).Status; !strings.HasPrefix(st.Message, "the status message was rejected") {
				refused++
				return apierrors.NewInvalid(schema.GroupKind{Group: "ringcache.io", Kind: "Warmup"}, "w",
					field.ErrorList{field.TooLong(field.NewPath("status", "message"), "", MaxMessage)})
			}
			written++
			return c.SubResource(sub).Update(ctx, obj, opts...)
		}}).Build()
	r, err := New(Options{Warmer: nopWarmer{}})
	if err != nil {
		t.Fatal(err)
	}
	r.client, r.reader = c, c
	err = r.updateStatus(context.Background(), client.ObjectKeyFromObject(w), func(w *v1alpha1.Warmup) bool {
		w.Status.Phase, w.Status.Message = v1alpha1.PhaseSucceeded, strings.Repeat("x", 5000)
		r.setCondition(w, v1alpha1.ConditionComplete, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, w.Status.Message)
		return true
	})
	if err != nil || refused != 1 || written != 1 {
		t.Fatalf("err %v, refused %d, written %d", err, refused, written)
	}
	var got v1alpha1.Warmup
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(w), &got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != v1alpha1.PhaseSucceeded || len(got.Status.Conditions) != 1 || !strings.HasPrefix(got.Status.Conditions[0].Message, "the status message was rejected") {
		t.Errorf("status %+v", got.Status)
	}
	// Bounded before any write.
	st := v1alpha1.WarmupStatus{Message: strings.Repeat("é", 3000), Conditions: []metav1.Condition{{Message: strings.Repeat("\xff", 2000)}}}
	boundMessages(&st)
	if len(st.Message) > MaxMessage || !strings.HasSuffix(st.Message, "é…") || len(st.Conditions[0].Message) > MaxMessage {
		t.Errorf("bounded: %d bytes %q..., %d bytes", len(st.Message), st.Message[len(st.Message)-8:], len(st.Conditions[0].Message))
	}
}
