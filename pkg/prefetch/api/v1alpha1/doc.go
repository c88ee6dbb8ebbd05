// Package v1alpha1 is the ringcache.io/v1alpha1 API: the Warmup custom
// resource, a warm-up of files of a JuiceFS volume on the ringcache ring,
// once or on a cron schedule with a lead time. The controller that runs
// Warmups is pkg/prefetch/controller ("cachenode controller"); the CRD is
// charts/ringcache/crds/ringcache.io_warmups.yaml and docs/warmup.md
// describes the fields and their semantics.
//
// +groupName=ringcache.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

// GroupVersion is the API's group and version.
var GroupVersion = schema.GroupVersion{Group: "ringcache.io", Version: "v1alpha1"}

var (
	// SchemeBuilder registers the API's types.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}
	// AddToScheme adds the API's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func init() {
	SchemeBuilder.Register(&Warmup{}, &WarmupList{})
}
