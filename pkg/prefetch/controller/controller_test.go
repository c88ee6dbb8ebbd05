package controller_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ringcache/ringcache/pkg/clock/clocktest"
	"github.com/ringcache/ringcache/pkg/prefetch/api/v1alpha1"
)

// TestSchemaRejectsInvalidSpecs: the API server refuses invalid Warmups
// (the CRD's OpenAPI schema and CEL rules), and nothing is stored.
func TestSchemaRejectsInvalidSpecs(t *testing.T) {
	c, ns := needAPI(t)
	ctx := context.Background()
	neg := resource.MustParse("-1Mi")
	cases := []struct {
		name   string
		mutate func(w *v1alpha1.Warmup)
		want   string
	}{
		{"negative bandwidth", func(w *v1alpha1.Warmup) { w.Spec.Bandwidth = &neg }, "bandwidth"},
		{"empty paths", func(w *v1alpha1.Warmup) { w.Spec.Paths = []string{} }, "paths"},
		{"no paths", func(w *v1alpha1.Warmup) { w.Spec.Paths = nil }, "paths"},
		{"relative path", func(w *v1alpha1.Warmup) { w.Spec.Paths = []string{"llama"} }, "paths"},
		{"no volume", func(w *v1alpha1.Warmup) { w.Spec.Volume = "" }, "volume"},
		{"bad policy type", func(w *v1alpha1.Warmup) { w.Spec.Policy.Type = "Weekly" }, "Unsupported value"},
		{"schedule missing", func(w *v1alpha1.Warmup) { w.Spec.Policy.Type = v1alpha1.PolicySchedule }, "schedule is required"},
		{"schedule with 3 fields", func(w *v1alpha1.Warmup) {
			w.Spec.Policy = v1alpha1.WarmupPolicy{Type: v1alpha1.PolicySchedule, Schedule: "0 8 *"}
		}, "schedule"},
		{"schedule on Once", func(w *v1alpha1.Warmup) { w.Spec.Policy.Schedule = "0 8 * * *" }, "only for type Schedule"},
		{"bad concurrency policy", func(w *v1alpha1.Warmup) {
			w.Spec.Policy = v1alpha1.WarmupPolicy{Type: v1alpha1.PolicySchedule, Schedule: "0 8 * * *", ConcurrencyPolicy: "Allow"}
		}, "Unsupported value"},
		{"replicas 4", func(w *v1alpha1.Warmup) { w.Spec.Replicas = 4 }, "replicas"},
		{"replicas -1", func(w *v1alpha1.Warmup) { w.Spec.Replicas = -1 }, "replicas"},
		{"negative concurrency", func(w *v1alpha1.Warmup) { w.Spec.Concurrency = -2 }, "concurrency"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWarmup(ns, fmt.Sprintf("bad-%d", i), v1alpha1.WarmupPolicy{})
			tc.mutate(w)
			err := c.Create(ctx, w)
			if err == nil || !contains(err.Error(), tc.want) {
				t.Errorf("create: err %v, want an error about %q", err, tc.want)
			}
		})
	}
	t.Run("negative integer bandwidth", func(t *testing.T) {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "ringcache.io/v1alpha1", "kind": "Warmup",
			"metadata": map[string]any{"namespace": ns, "name": "bad-int-bandwidth"},
			"spec":     map[string]any{"volume": "models", "paths": []any{"/llama"}, "bandwidth": int64(-5)},
		}}
		if err := c.Create(ctx, u); err == nil || !contains(err.Error(), "bandwidth must not be negative") {
			t.Errorf("create: err %v, want bandwidth must not be negative", err)
		}
	})
	t.Run("negative duration", func(t *testing.T) {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "ringcache.io/v1alpha1", "kind": "Warmup",
			"metadata": map[string]any{"namespace": ns, "name": "bad-deadline"},
			"spec":     map[string]any{"volume": "models", "paths": []any{"/llama"}, "deadline": "-5m"},
		}}
		if err := c.Create(ctx, u); err == nil || !contains(err.Error(), "deadline") {
			t.Errorf("create: err %v, want an error about the deadline", err)
		}
	})
	var list v1alpha1.WarmupList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Errorf("%d invalid Warmups were stored", len(list.Items))
	}

	// Valid ones pass, with the defaults filled in.
	bw := resource.MustParse("200Mi")
	w := newWarmup(ns, "good", v1alpha1.WarmupPolicy{})
	w.Spec.Bandwidth = &bw
	if err := c.Create(ctx, w); err != nil {
		t.Fatalf("valid Warmup refused: %v", err)
	}
	if w.Spec.Replicas != 1 || w.Spec.Policy.Type != v1alpha1.PolicyOnce || w.Spec.Bandwidth.Value() != 200<<20 {
		t.Errorf("defaults: %+v", w.Spec)
	}
	s := newWarmup(ns, "good-scheduled", v1alpha1.WarmupPolicy{Type: v1alpha1.PolicySchedule, Schedule: "0 8 * * 1-5",
		LeadTime: dur(20 * time.Minute), ConcurrencyPolicy: v1alpha1.ReplaceConcurrent, StartingDeadline: dur(10 * time.Minute)})
	s.Spec.Deadline = dur(time.Hour)
	if err := c.Create(ctx, s); err != nil {
		t.Fatalf("valid scheduled Warmup refused: %v", err)
	}
}

// TestInvalidScheduleReportedInStatus: what the schema lets through but
// cron refuses is reported as Failed, and nothing runs.
func TestInvalidScheduleReportedInStatus(t *testing.T) {
	c, ns := needAPI(t)
	fw := &fakeWarmer{}
	r := startController(t, ns, fw, clocktest.New(time.Date(2030, 3, 4, 7, 0, 0, 0, time.UTC)))
	w := newWarmup(ns, "bad-cron", v1alpha1.WarmupPolicy{Type: v1alpha1.PolicySchedule, Schedule: "61 8 * * *", LeadTime: dur(20 * time.Minute)})
	if err := c.Create(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(w)
	got := waitPhase(t, c, key, v1alpha1.PhaseFailed, 20*time.Second)
	cond := condition(got, v1alpha1.ConditionSpecValid)
	if cond == nil || cond.Status != "False" || cond.Reason != v1alpha1.ReasonInvalidSchedule || !contains(cond.Message, "61 8 * * *") {
		t.Errorf("SpecValid condition = %+v", cond)
	}
	if !contains(got.Status.Message, "invalid spec") || got.Status.NextScheduleTime != nil || got.Status.StartTime != nil {
		t.Errorf("status = %+v", got.Status)
	}
	// The reconcile that wrote Failed started nothing; one more, run to
	// its end here, starts nothing either.
	reconcileNow(t, r, key)
	if calls, _ := fw.counts(); calls != 0 || r.Running(key) {
		t.Errorf("%d warm-ups ran (running %v) for an invalid spec", calls, r.Running(key))
	}

	// Fixing the spec lets it be scheduled.
	got.Spec.Policy.Schedule = "0 8 * * *"
	if err := c.Update(context.Background(), got); err != nil {
		t.Fatal(err)
	}
	got = waitPhase(t, c, key, v1alpha1.PhasePending, 20*time.Second)
	if cond := condition(got, v1alpha1.ConditionSpecValid); cond == nil || cond.Status != "True" {
		t.Errorf("SpecValid after the fix = %+v", cond)
	}
}

// TestScheduleLeadTime: "0 8 * * *" with leadTime 20m starts at 07:40 by
// the injected clock, not before; lastScheduleTime is the schedule time
// (08:00), startTime the start (07:40). Late starts past startingDeadline
// are skipped and recorded; schedule times missed while a newer one is
// due are counted.
func TestScheduleLeadTime(t *testing.T) {
	c, ns := needAPI(t)
	ctx := context.Background()
	fw := &fakeWarmer{}
	day := time.Date(2030, 3, 4, 0, 0, 0, 0, time.UTC)
	at := func(d int, hh, mm, ss int) time.Time {
		return day.AddDate(0, 0, d).Add(time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute + time.Duration(ss)*time.Second)
	}
	clk := clocktest.New(at(0, 7, 39, 30))
	r := startController(t, ns, fw, clk)

	policy := v1alpha1.WarmupPolicy{Type: v1alpha1.PolicySchedule, Schedule: "0 8 * * *", LeadTime: dur(20 * time.Minute)}
	w := newWarmup(ns, "morning", policy)
	if err := c.Create(ctx, w); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(w)
	strict := newWarmup(ns, "strict", policy)
	strict.Spec.Policy.StartingDeadline = dur(5 * time.Minute)
	if err := c.Create(ctx, strict); err != nil {
		t.Fatal(err)
	}
	skey := client.ObjectKeyFromObject(strict)

	// 07:39:30: pending, next start 07:40.
	got := waitPhase(t, c, key, v1alpha1.PhasePending, 20*time.Second)
	if !got.Status.NextScheduleTime.Time.Equal(at(0, 8, 0, 0)) || !got.Status.NextStartTime.Time.Equal(at(0, 7, 40, 0)) {
		t.Errorf("at 07:39:30: next schedule %v, next start %v; want 08:00, 07:40", got.Status.NextScheduleTime, got.Status.NextStartTime)
	}
	waitPhase(t, c, skey, v1alpha1.PhasePending, 20*time.Second)
	reconcileNow(t, r, key)
	if calls, _ := fw.counts(); calls != 0 || r.Running(key) {
		t.Fatalf("at 07:39:30, %d runs started (running %v); want none before 07:40", calls, r.Running(key))
	}

	// 07:40: it runs.
	clk.Set(at(0, 7, 40, 0))
	poke(t, c, key)
	got = waitPhase(t, c, key, v1alpha1.PhaseSucceeded, 20*time.Second)
	st := got.Status
	if !st.StartTime.Time.Equal(at(0, 7, 40, 0)) || !st.LastScheduleTime.Time.Equal(at(0, 8, 0, 0)) ||
		!st.NextScheduleTime.Time.Equal(at(1, 8, 0, 0)) || !st.NextStartTime.Time.Equal(at(1, 7, 40, 0)) {
		t.Errorf("after the 07:40 run: start %v, last schedule %v, next schedule %v, next start %v", st.StartTime, st.LastScheduleTime, st.NextScheduleTime, st.NextStartTime)
	}
	if st.BlocksTotal != 10 || st.BlocksDone != 10 || st.FilesDone != 2 || st.Progress != "100.0%" || st.CompletionTime == nil {
		t.Errorf("status after the run: %+v", st)
	}
	if calls, _ := fw.counts(); calls != 1 {
		t.Errorf("%d runs, want 1", calls)
	}

	// 07:50, 10m after the start time: "strict" (startingDeadline 5m)
	// skips its run and says so.
	clk.Set(at(0, 7, 50, 0))
	poke(t, c, skey)
	eventually(t, 20*time.Second, "strict skips the late run", func() (bool, string) {
		s := get(t, c, skey)
		cond := condition(s, v1alpha1.ConditionScheduleSkipped)
		return cond != nil && s.Status.NextScheduleTime != nil && s.Status.NextScheduleTime.Time.Equal(at(1, 8, 0, 0)), fmt.Sprintf("%+v", s.Status)
	})
	s := get(t, c, skey)
	cond := condition(s, v1alpha1.ConditionScheduleSkipped)
	if cond.Reason != v1alpha1.ReasonMissedSchedule || !contains(cond.Message, "startingDeadline") || s.Status.SkippedRuns != 1 ||
		s.Status.Phase != v1alpha1.PhasePending || !s.Status.LastScheduleTime.Time.Equal(at(0, 8, 0, 0)) {
		t.Errorf("strict after a late start: condition %+v, status %+v", cond, s.Status)
	}
	if calls, _ := fw.counts(); calls != 1 {
		t.Errorf("%d runs, want still 1", calls)
	}

	// Three days later at 07:45: the two schedule times in between were
	// missed; the due one runs (5m late, no startingDeadline).
	clk.Set(at(3, 7, 45, 0))
	poke(t, c, key)
	eventually(t, 20*time.Second, "the late run", func() (bool, string) {
		g := get(t, c, key)
		return g.Status.Phase == v1alpha1.PhaseSucceeded && g.Status.LastScheduleTime.Time.Equal(at(3, 8, 0, 0)), fmt.Sprintf("%+v", g.Status)
	})
	got = get(t, c, key)
	cond = condition(got, v1alpha1.ConditionScheduleSkipped)
	if cond == nil || cond.Reason != v1alpha1.ReasonMissedSchedule || got.Status.SkippedRuns != 2 || !got.Status.StartTime.Time.Equal(at(3, 7, 45, 0)) {
		t.Errorf("after downtime: condition %+v, status %+v", cond, got.Status)
	}
	if calls, _ := fw.counts(); calls != 2 {
		t.Errorf("%d runs, want 2", calls)
	}
}

// TestForbidOverlappingRuns: with concurrencyPolicy Forbid, a run due
// while the last still runs is skipped and recorded; the old one goes on.
func TestForbidOverlappingRuns(t *testing.T) {
	c, ns := needAPI(t)
	fw := &fakeWarmer{hold: make(chan struct{})}
	clk := clocktest.New(time.Date(2030, 3, 4, 7, 40, 0, 0, time.UTC))
	r := startController(t, ns, fw, clk)
	w := newWarmup(ns, "forbid", v1alpha1.WarmupPolicy{Type: v1alpha1.PolicySchedule, Schedule: "0 8 * * *", LeadTime: dur(20 * time.Minute)})
	if err := c.Create(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(w)
	got := waitPhase(t, c, key, v1alpha1.PhaseRunning, 20*time.Second)
	// Progress is written at the status interval of the fake clock: once
	// the warmer has reported, the next tick writes it.
	eventually(t, 20*time.Second, "the warmer reports progress", func() (bool, string) {
		n := fw.progressReported()
		return n == 1, fmt.Sprintf("%d reports", n)
	})
	clk.Advance(statusInterval)
	eventually(t, 10*time.Second, "progress in the status", func() (bool, string) {
		got = get(t, c, key)
		return got.Status.BlocksDone == 4 && got.Status.BlocksTotal == 10, fmt.Sprintf("%+v", got.Status)
	})
	if got.Status.Progress != "40.0%" {
		t.Errorf("progress %q, want 40.0%%", got.Status.Progress)
	}

	clk.Set(time.Date(2030, 3, 5, 7, 41, 0, 0, time.UTC))
	poke(t, c, key)
	eventually(t, 20*time.Second, "the overlapping run is skipped", func() (bool, string) {
		got = get(t, c, key)
		cond := condition(got, v1alpha1.ConditionScheduleSkipped)
		return cond != nil && cond.Reason == v1alpha1.ReasonConcurrencyForbidden, fmt.Sprintf("%+v", got.Status)
	})
	if calls, canceled := fw.counts(); calls != 1 || canceled != 0 || !r.Running(key) || got.Status.Phase != v1alpha1.PhaseRunning {
		t.Errorf("after a forbidden overlap: %d runs, %d canceled, running %v, phase %s", calls, canceled, r.Running(key), got.Status.Phase)
	}
	if !got.Status.StartTime.Time.Equal(time.Date(2030, 3, 4, 7, 40, 0, 0, time.UTC)) || got.Status.SkippedRuns != 1 {
		t.Errorf("status after a forbidden overlap: %+v", got.Status)
	}
	close(fw.hold)
	waitPhase(t, c, key, v1alpha1.PhaseSucceeded, 20*time.Second)
}

// TestReplaceOverlappingRuns: with Replace, the old run is canceled and
// the new one starts.
func TestReplaceOverlappingRuns(t *testing.T) {
	c, ns := needAPI(t)
	fw := &fakeWarmer{hold: make(chan struct{})}
	clk := clocktest.New(time.Date(2030, 3, 4, 7, 40, 0, 0, time.UTC))
	startController(t, ns, fw, clk)
	w := newWarmup(ns, "replace", v1alpha1.WarmupPolicy{Type: v1alpha1.PolicySchedule, Schedule: "0 8 * * *",
		LeadTime: dur(20 * time.Minute), ConcurrencyPolicy: v1alpha1.ReplaceConcurrent})
	if err := c.Create(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(w)
	waitPhase(t, c, key, v1alpha1.PhaseRunning, 20*time.Second)
	clk.Set(time.Date(2030, 3, 5, 7, 41, 0, 0, time.UTC))
	poke(t, c, key)
	eventually(t, 20*time.Second, "the new run replaces the old", func() (bool, string) {
		calls, canceled := fw.counts()
		return calls == 2 && canceled == 1, fmt.Sprintf("%d calls, %d canceled", calls, canceled)
	})
	got := get(t, c, key)
	if got.Status.Phase != v1alpha1.PhaseRunning || !got.Status.StartTime.Time.Equal(time.Date(2030, 3, 5, 7, 41, 0, 0, time.UTC)) ||
		!got.Status.LastScheduleTime.Time.Equal(time.Date(2030, 3, 5, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("status after Replace: %+v", got.Status)
	}
	close(fw.hold)
	waitPhase(t, c, key, v1alpha1.PhaseSucceeded, 20*time.Second)
}

// TestDeleteCancelsRun: deleting a Warmup cancels its run.
func TestDeleteCancelsRun(t *testing.T) {
	c, ns := needAPI(t)
	fw := &fakeWarmer{hold: make(chan struct{})}
	defer close(fw.hold)
	r := startController(t, ns, fw, clocktest.New(time.Date(2030, 3, 4, 7, 40, 0, 0, time.UTC)))
	w := newWarmup(ns, "doomed", v1alpha1.WarmupPolicy{})
	if err := c.Create(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(w)
	waitPhase(t, c, key, v1alpha1.PhaseRunning, 20*time.Second)
	// The status says Running before the run's goroutine is registered
	// (the reconciler writes the status first): wait for the run itself.
	eventually(t, 20*time.Second, "the run is in progress", func() (bool, string) {
		calls, _ := fw.counts()
		return r.Running(key) && calls == 1, fmt.Sprintf("running %v, %d calls", r.Running(key), calls)
	})
	if err := c.Delete(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the run is canceled", func() (bool, string) {
		_, canceled := fw.counts()
		return canceled == 1 && !r.Running(key), fmt.Sprintf("canceled %d, running %v", canceled, r.Running(key))
	})
}

// TestDeadlineExceeded: a run still going at its deadline is canceled and
// marked Failed, reason DeadlineExceeded.
func TestDeadlineExceeded(t *testing.T) {
	c, ns := needAPI(t)
	fw := &fakeWarmer{hold: make(chan struct{})}
	defer close(fw.hold)
	clk := clocktest.New(time.Date(2030, 3, 4, 7, 40, 0, 0, time.UTC))
	r := startController(t, ns, fw, clk)
	w := newWarmup(ns, "slow", v1alpha1.WarmupPolicy{})
	w.Spec.Deadline = dur(time.Minute)
	if err := c.Create(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(w)
	eventually(t, 20*time.Second, "the run is in progress", func() (bool, string) {
		calls, _ := fw.counts()
		return r.Running(key) && calls == 1, fmt.Sprintf("running %v, %d calls", r.Running(key), calls)
	})
	// The run armed its deadline timer and its progress ticker before
	// calling the warmer. A second short of the deadline it still runs.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := clk.BlockUntil(ctx, 2); err != nil {
		t.Fatalf("the run's timers: %v (%d armed)", err, clk.Waiters())
	}
	clk.Advance(time.Minute - time.Second)
	// A timer that fires leaves the fake clock within Advance: both still
	// armed means the deadline has not fired (its cancel runs async).
	if n := clk.Waiters(); n != 2 {
		t.Fatalf("1s before the deadline: %d timers armed, want the deadline and the progress ticker", n)
	}
	reconcileNow(t, r, key)
	if got := get(t, c, key); !r.Running(key) || got.Status.Phase != v1alpha1.PhaseRunning {
		t.Fatalf("1s before the deadline: running %v, phase %s", r.Running(key), got.Status.Phase)
	}
	clk.Advance(time.Second)
	got := waitPhase(t, c, key, v1alpha1.PhaseFailed, 20*time.Second)
	cond := condition(got, v1alpha1.ConditionComplete)
	if cond == nil || cond.Reason != v1alpha1.ReasonDeadlineExceeded || got.Status.BlocksDone != 4 || got.Status.CompletionTime == nil {
		t.Errorf("after the deadline: condition %+v, status %+v", cond, got.Status)
	}
}
