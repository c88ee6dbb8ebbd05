package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PolicyType says when a Warmup runs.
type PolicyType string

const (
	// PolicyOnce runs the warm-up once per spec generation, as soon as the
	// controller sees it (the default).
	PolicyOnce PolicyType = "Once"
	// PolicySchedule runs the warm-up at every time of a cron schedule,
	// Policy.LeadTime ahead of it.
	PolicySchedule PolicyType = "Schedule"
)

// ConcurrencyPolicy says what happens when a scheduled run is due while
// the previous run of the same Warmup is still going.
type ConcurrencyPolicy string

const (
	// ForbidConcurrent lets the running run go on and skips the new one
	// (recorded in the ScheduleSkipped condition). The default.
	ForbidConcurrent ConcurrencyPolicy = "Forbid"
	// ReplaceConcurrent cancels the running run and starts the new one.
	ReplaceConcurrent ConcurrencyPolicy = "Replace"
)

// Phase is the state of a Warmup's current or last run.
type Phase string

const (
	// PhasePending: no run yet (a scheduled Warmup waiting for its first
	// start time, or a Once Warmup not picked up yet).
	PhasePending Phase = "Pending"
	// PhaseRunning: a run is going.
	PhaseRunning Phase = "Running"
	// PhaseSucceeded: the last run put every block on its owners.
	PhaseSucceeded Phase = "Succeeded"
	// PhaseFailed: the spec is invalid (see the SpecValid condition), or
	// the last run failed (blocks failed, its deadline passed, or it could
	// not start); the Complete condition's reason says which.
	PhaseFailed Phase = "Failed"
)

// Condition types of a Warmup.
const (
	// ConditionSpecValid is False when the spec is invalid in a way the
	// schema cannot tell (a bad cron expression); reason InvalidSchedule.
	// Nothing runs until the spec is fixed.
	ConditionSpecValid = "SpecValid"
	// ConditionComplete is True once a run has ended, with its outcome as
	// the reason (Succeeded, BlocksFailed, DeadlineExceeded, UnknownVolume,
	// PathNotFound, NoMetadataURL, RunFailed), and False while one runs
	// (reason Running).
	ConditionComplete = "Complete"
	// ConditionScheduleSkipped is True when a scheduled run was skipped:
	// reason MissedSchedule (its start time is older than
	// startingDeadline, or a newer one was due too) or ConcurrencyForbidden
	// (the previous run was still going). The message names the schedule
	// time. It stays until a later skip replaces it.
	ConditionScheduleSkipped = "ScheduleSkipped"
)

// Reasons of the conditions and of status.message.
const (
	ReasonValid                = "Valid"
	ReasonInvalidSchedule      = "InvalidSchedule"
	ReasonInvalidSpec          = "InvalidSpec"
	ReasonRunning              = "Running"
	ReasonSucceeded            = "Succeeded"
	ReasonBlocksFailed         = "BlocksFailed"
	ReasonDeadlineExceeded     = "DeadlineExceeded"
	ReasonUnknownVolume        = "UnknownVolume"
	ReasonPathNotFound         = "PathNotFound"
	ReasonNoMetadataURL        = "NoMetadataURL"
	ReasonRunFailed            = "RunFailed"
	ReasonMissedSchedule       = "MissedSchedule"
	ReasonConcurrencyForbidden = "ConcurrencyForbidden"
	ReasonReplaced             = "Replaced"
)

// WarmupPolicy says when a Warmup runs.
type WarmupPolicy struct {
	// Type is Once (default) or Schedule.
	Type PolicyType `json:"type,omitempty"`
	// Schedule is a cron expression of five fields (minute hour
	// day-of-month month day-of-week) or a descriptor such as @daily, in
	// UTC: the times the blocks must be warm by (e.g. a scale-up).
	// Required for type Schedule.
	Schedule string `json:"schedule,omitempty"`
	// LeadTime is how long before each schedule time a run starts:
	// schedule "0 8 * * *" with leadTime 20m starts at 07:40.
	LeadTime *metav1.Duration `json:"leadTime,omitempty"`
	// ConcurrencyPolicy is Forbid (default) or Replace: what to do when a
	// run is due while the previous one still runs.
	ConcurrencyPolicy ConcurrencyPolicy `json:"concurrencyPolicy,omitempty"`
	// StartingDeadline: a run whose start time (schedule time - leadTime)
	// is more than this in the past when the controller gets to it (it was
	// down, say) is skipped and reported. Unset: a late run still starts.
	StartingDeadline *metav1.Duration `json:"startingDeadline,omitempty"`
}

// WarmupSpec is what to warm and when.
type WarmupSpec struct {
	// Volume is the name of the JuiceFS volume as the cache nodes serve it.
	Volume string `json:"volume"`
	// Paths are files or directories (taken recursively), absolute within
	// the volume.
	Paths []string `json:"paths"`
	// Replicas is how many owners of each block must hold it (1-3,
	// default 1).
	Replicas int32 `json:"replicas,omitempty"`
	// Bandwidth is the run's budget of origin bytes per second across all
	// owners, e.g. 200Mi (unset or 0: none).
	Bandwidth *resource.Quantity `json:"bandwidth,omitempty"`
	// Concurrency is the most Warm calls in flight per owner (default 2).
	Concurrency int32 `json:"concurrency,omitempty"`
	// Policy says when to run (default: once).
	Policy WarmupPolicy `json:"policy,omitempty"`
	// Deadline is how long a run may take from its start. A run still
	// going then is canceled and marked Failed with reason
	// DeadlineExceeded.
	Deadline *metav1.Duration `json:"deadline,omitempty"`
}

// WarmupStatus is the state of the current or last run.
type WarmupStatus struct {
	// Phase is Pending, Running, Succeeded or Failed.
	Phase Phase `json:"phase,omitempty"`
	// ObservedGeneration is the spec generation the controller acted on.
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Message is a human-readable summary of the phase.
	Message string `json:"message,omitempty"`

	FilesTotal  int64 `json:"filesTotal,omitempty"`
	FilesDone   int64 `json:"filesDone,omitempty"`
	FilesFailed int64 `json:"filesFailed,omitempty"`

	BlocksTotal  int64 `json:"blocksTotal,omitempty"`
	BlocksDone   int64 `json:"blocksDone,omitempty"`
	BlocksFailed int64 `json:"blocksFailed,omitempty"`
	// CachedBlocks are the done blocks that no owner had to fetch (they
	// were cached already).
	CachedBlocks int64 `json:"cachedBlocks,omitempty"`

	BytesTotal  int64 `json:"bytesTotal,omitempty"`
	BytesDone   int64 `json:"bytesDone,omitempty"`
	BytesFailed int64 `json:"bytesFailed,omitempty"`

	// Progress is bytesDone / bytesTotal as a percentage, e.g. "42.0%".
	Progress string `json:"progress,omitempty"`
	// Rate is bytes done per second (over the last 10s while running,
	// over the whole run at the end).
	Rate int64 `json:"rate,omitempty"`
	// ETA is the time left at Rate, e.g. "1m30s" ("" when unknown).
	ETA string `json:"eta,omitempty"`

	// StartTime is when the current or last run started.
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// CompletionTime is when the last run ended.
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// LastScheduleTime is the latest schedule time (the time the blocks
	// were wanted by, not the start time) the controller acted on: a run
	// started for it, or it was skipped (see ScheduleSkipped).
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`
	// NextScheduleTime is the next schedule time.
	NextScheduleTime *metav1.Time `json:"nextScheduleTime,omitempty"`
	// NextStartTime is when the next run starts: NextScheduleTime -
	// leadTime.
	NextStartTime *metav1.Time `json:"nextStartTime,omitempty"`
	// SkippedRuns counts scheduled runs skipped (missed or forbidden).
	SkippedRuns int64 `json:"skippedRuns,omitempty"`

	// Conditions: SpecValid, Complete, ScheduleSkipped.
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Warmup puts the blocks of files of a JuiceFS volume on the cache nodes
// that own them, once or on a schedule.
type Warmup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   WarmupSpec   `json:"spec,omitempty"`
	Status WarmupStatus `json:"status,omitempty"`
}

// WarmupList is a list of Warmups.
type WarmupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Warmup `json:"items"`
}
