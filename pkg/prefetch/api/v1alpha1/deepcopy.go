package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Hand-written deep copies (the types are few and small).

func copyDuration(d *metav1.Duration) *metav1.Duration {
	if d == nil {
		return nil
	}
	c := *d
	return &c
}

func copyTime(t *metav1.Time) *metav1.Time {
	if t == nil {
		return nil
	}
	return t.DeepCopy()
}

// DeepCopyInto copies p into out.
func (p *WarmupPolicy) DeepCopyInto(out *WarmupPolicy) {
	*out = *p
	out.LeadTime = copyDuration(p.LeadTime)
	out.StartingDeadline = copyDuration(p.StartingDeadline)
}

// DeepCopy returns a copy of p.
func (p *WarmupPolicy) DeepCopy() *WarmupPolicy {
	if p == nil {
		return nil
	}
	out := new(WarmupPolicy)
	p.DeepCopyInto(out)
	return out
}

// DeepCopyInto copies s into out.
func (s *WarmupSpec) DeepCopyInto(out *WarmupSpec) {
	*out = *s
	if s.Paths != nil {
		out.Paths = append([]string(nil), s.Paths...)
	}
	if s.Bandwidth != nil {
		q := s.Bandwidth.DeepCopy()
		out.Bandwidth = &q
	}
	s.Policy.DeepCopyInto(&out.Policy)
	out.Deadline = copyDuration(s.Deadline)
}

// DeepCopy returns a copy of s.
func (s *WarmupSpec) DeepCopy() *WarmupSpec {
	if s == nil {
		return nil
	}
	out := new(WarmupSpec)
	s.DeepCopyInto(out)
	return out
}

// DeepCopyInto copies s into out.
func (s *WarmupStatus) DeepCopyInto(out *WarmupStatus) {
	*out = *s
	out.StartTime = copyTime(s.StartTime)
	out.CompletionTime = copyTime(s.CompletionTime)
	out.LastScheduleTime = copyTime(s.LastScheduleTime)
	out.NextScheduleTime = copyTime(s.NextScheduleTime)
	out.NextStartTime = copyTime(s.NextStartTime)
	if s.Conditions != nil {
		out.Conditions = make([]metav1.Condition, len(s.Conditions))
		for i := range s.Conditions {
			s.Conditions[i].DeepCopyInto(&out.Conditions[i])
		}
	}
}

// DeepCopy returns a copy of s.
func (s *WarmupStatus) DeepCopy() *WarmupStatus {
	if s == nil {
		return nil
	}
	out := new(WarmupStatus)
	s.DeepCopyInto(out)
	return out
}

// DeepCopyInto copies w into out.
func (w *Warmup) DeepCopyInto(out *Warmup) {
	*out = *w
	out.TypeMeta = w.TypeMeta
	w.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	w.Spec.DeepCopyInto(&out.Spec)
	w.Status.DeepCopyInto(&out.Status)
}

// DeepCopy returns a copy of w.
func (w *Warmup) DeepCopy() *Warmup {
	if w == nil {
		return nil
	}
	out := new(Warmup)
	w.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (w *Warmup) DeepCopyObject() runtime.Object { return w.DeepCopy() }

// DeepCopyInto copies l into out.
func (l *WarmupList) DeepCopyInto(out *WarmupList) {
	*out = *l
	out.TypeMeta = l.TypeMeta
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	if l.Items != nil {
		out.Items = make([]Warmup, len(l.Items))
		for i := range l.Items {
			l.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
}

// DeepCopy returns a copy of l.
func (l *WarmupList) DeepCopy() *WarmupList {
	if l == nil {
		return nil
	}
	out := new(WarmupList)
	l.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (l *WarmupList) DeepCopyObject() runtime.Object { return l.DeepCopy() }
