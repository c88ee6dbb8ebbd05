package controller

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ringcache/ringcache/pkg/prefetch/api/v1alpha1"
)

// parseSchedule parses a Warmup's cron expression: five fields (minute
// hour day-of-month month day-of-week) or a descriptor (@daily...), in
// UTC. Time-zone prefixes and @every are refused, so the schedule means
// the same whatever the controller's zone.
func parseSchedule(s string) (cron.Schedule, error) {
	if s == "" {
		return nil, fmt.Errorf("schedule is required for policy type Schedule")
	}
	p := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	sched, err := p.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("invalid schedule %q: %v", s, err)
	}
	if _, every := sched.(cron.ConstantDelaySchedule); every {
		return nil, fmt.Errorf("invalid schedule %q: @every is not supported, use five cron fields", s)
	}
	if ss, ok := sched.(*cron.SpecSchedule); ok {
		ss.Location = time.UTC
	}
	return sched, nil
}

// maxDue bounds the schedule times one reconcile walks through after a
// long downtime; the next reconcile goes on from there.
const maxDue = 1_000_000

// dueTimes looks at the schedule times from next on whose start time
// (t - lead) is not after now. It returns the latest of them (zero if
// none), how many older ones were passed over, and the first schedule time
// after the latest (the new next).
func dueTimes(sched cron.Schedule, next time.Time, lead time.Duration, now time.Time) (latest time.Time, missed int, newNext time.Time) {
	newNext = next
	for n := 0; n < maxDue && !newNext.IsZero() && !newNext.Add(-lead).After(now); n++ {
		if !latest.IsZero() {
			missed++
		}
		latest = newNext
		newNext = sched.Next(newNext)
	}
	return latest, missed, newNext
}

func durationOf(d *metav1.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.Duration
}

// validateSpec checks what the CRD schema cannot (or what a client without
// the schema might send) and returns the parsed schedule of a scheduled
// Warmup.
func validateSpec(s *v1alpha1.WarmupSpec) (cron.Schedule, string, error) {
	switch {
	case s.Volume == "":
		return nil, v1alpha1.ReasonInvalidSpec, fmt.Errorf("volume is required")
	case len(s.Paths) == 0:
		return nil, v1alpha1.ReasonInvalidSpec, fmt.Errorf("paths must name at least one path")
	case s.Replicas < 0 || s.Replicas > 3:
		return nil, v1alpha1.ReasonInvalidSpec, fmt.Errorf("replicas must be in [1, 3], not %d", s.Replicas)
	case s.Bandwidth != nil && s.Bandwidth.Sign() < 0:
		return nil, v1alpha1.ReasonInvalidSpec, fmt.Errorf("bandwidth must not be negative, not %s", s.Bandwidth)
	case s.Concurrency < 0:
		return nil, v1alpha1.ReasonInvalidSpec, fmt.Errorf("concurrency must not be negative, not %d", s.Concurrency)
	case durationOf(s.Deadline) < 0 || durationOf(s.Policy.LeadTime) < 0 || durationOf(s.Policy.StartingDeadline) < 0:
		return nil, v1alpha1.ReasonInvalidSpec, fmt.Errorf("deadline, leadTime and startingDeadline must not be negative")
	}
	switch s.Policy.ConcurrencyPolicy {
	case "", v1alpha1.ForbidConcurrent, v1alpha1.ReplaceConcurrent:
	default:
		return nil, v1alpha1.ReasonInvalidSpec, fmt.Errorf("concurrencyPolicy must be Forbid or Replace, not %q", s.Policy.ConcurrencyPolicy)
	}
	switch s.Policy.Type {
	case "", v1alpha1.PolicyOnce:
		if s.Policy.Schedule != "" {
			return nil, v1alpha1.ReasonInvalidSpec, fmt.Errorf("schedule is only for policy type Schedule")
		}
		return nil, "", nil
	case v1alpha1.PolicySchedule:
		sched, err := parseSchedule(s.Policy.Schedule)
		if err != nil {
			return nil, v1alpha1.ReasonInvalidSchedule, err
		}
		return sched, "", nil
	}
	return nil, v1alpha1.ReasonInvalidSpec, fmt.Errorf("policy type must be Once or Schedule, not %q", s.Policy.Type)
}
