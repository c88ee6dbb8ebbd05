package csi

import (
	"context"
	"log/slog"
	"slices"
	"sort"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Controller is the CSI controller service: dynamic provisioning of model
// volumes. CreateVolume turns StorageClass parameters (and the PVC) into a
// model path inside a JuiceFS volume after checking that it exists;
// DeleteVolume forgets the volume and never deletes model data. The
// controller keeps no state: the volume ID and context say everything.
type Controller struct {
	csi.UnimplementedControllerServer
	o        ControllerOptions
	checker  Checker
	log      *slog.Logger
	identity *Identity
	// busyNames and busyIDs hold the CreateVolume names and the volume
	// IDs with an operation in flight.
	busyNames, busyIDs inflight
}

// NewController fills in o's defaults, validates it and returns the
// controller service.
func NewController(o ControllerOptions) (*Controller, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	c := &Controller{o: o, checker: o.Checker, log: o.Logger}
	c.identity = newIdentity(o.DriverName, o.Version, nil, o.Logger)
	return c, nil
}

// Register registers the identity and controller services on s.
func (c *Controller) Register(s *grpc.Server) {
	csi.RegisterIdentityServer(s, c.identity)
	csi.RegisterControllerServer(s, c)
}

// Identity returns the controller's identity service.
func (c *Controller) Identity() *Identity { return c.identity }

// ControllerGetCapabilities implements csi.ControllerServer.
func (c *Controller) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: []*csi.ControllerServiceCapability{{
		Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{
			Type: csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		}},
	}}}, nil
}

// storageClassParams are the StorageClass parameters the controller
// accepts, besides the external-provisioner's csi.storage.k8s.io/ ones.
var storageClassParams = []string{KeyVolume, KeyPathPattern, KeyAllowedPrefix}

// createPlan is a validated CreateVolume request.
type createPlan struct {
	name, volume, metaURL string
	pattern               pattern
	prefix, secretPrefix  string
	vars                  patternVars
}

// validateCreate checks every field of a CreateVolume request, before any
// lock or remote call.
func (c *Controller) validateCreate(req *csi.CreateVolumeRequest) (*createPlan, error) {
	if err := checkID(req.GetName(), "name"); err != nil {
		return nil, err
	}
	if err := checkMap(req.GetParameters(), "StorageClass parameters", false); err != nil {
		return nil, err
	}
	if err := checkMap(req.GetSecrets(), "provisioner secret", true); err != nil {
		return nil, err
	}
	if err := validateCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	if cr := req.GetCapacityRange(); cr != nil {
		if cr.GetRequiredBytes() < 0 || cr.GetLimitBytes() < 0 {
			return nil, status.Error(codes.InvalidArgument, "capacity range must not be negative")
		}
		if cr.GetLimitBytes() > 0 && cr.GetRequiredBytes() > cr.GetLimitBytes() {
			return nil, status.Error(codes.InvalidArgument, "capacity range: required bytes exceed the limit")
		}
	}
	if req.GetVolumeContentSource() != nil {
		return nil, status.Error(codes.InvalidArgument, "volume content sources (snapshots, clones) are not supported: a model volume names existing data")
	}
	if len(req.GetMutableParameters()) > 0 {
		return nil, status.Error(codes.InvalidArgument, "mutable parameters are not supported")
	}
	params := req.GetParameters()
	for k := range params {
		if !isKubernetesKey(k) && !slices.Contains(storageClassParams, k) {
			return nil, status.Errorf(codes.InvalidArgument, "unknown StorageClass parameter %q (known: %s)", k, strings.Join(storageClassParams, ", "))
		}
	}
	if err := validateVolumeName(params[KeyVolume], "StorageClass parameter"); err != nil {
		return nil, err
	}
	pat, err := parsePattern(params[KeyPathPattern])
	if err != nil {
		return nil, err
	}
	plan := &createPlan{name: req.GetName(), volume: params[KeyVolume], pattern: pat, vars: patternVars{
		PVCNamespace: params[keyPVCNamespace], PVCName: params[keyPVCName], PVName: params[keyPVName],
	}}
	if p, ok := params[KeyAllowedPrefix]; ok {
		if plan.prefix, err = cleanVolumePath(p, "StorageClass parameter "+KeyAllowedPrefix, true); err != nil {
			return nil, err
		}
	}
	const secretName = "provisioner secret (StorageClass csi.storage.k8s.io/provisioner-secret-name)"
	if plan.metaURL, err = metaURLFrom(req.GetSecrets(), secretName); err != nil {
		return nil, err
	}
	if plan.secretPrefix, err = secretPrefix(req.GetSecrets(), "provisioner secret"); err != nil {
		return nil, err
	}
	for _, need := range []struct {
		kind refKind
		val  string
		ref  string
	}{
		{refPVCNamespace, plan.vars.PVCNamespace, "${pvc.namespace}"},
		{refPVCName, plan.vars.PVCName, "${pvc.name}"},
		{refPVName, plan.vars.PVName, "${pv.name}"},
	} {
		if pat.needs(need.kind) && need.val == "" {
			return nil, status.Errorf(codes.InvalidArgument, "%s uses %s but the request carries no PVC/PV metadata: run the external-provisioner with --extra-create-metadata", KeyPathPattern, need.ref)
		}
	}
	if pat.needs(refPVCAnnotation) {
		if plan.vars.PVCNamespace == "" || plan.vars.PVCName == "" {
			return nil, status.Errorf(codes.InvalidArgument, "%s uses PVC annotations but the request carries no PVC metadata: run the external-provisioner with --extra-create-metadata", KeyPathPattern)
		}
		if c.o.PVCs == nil {
			return nil, status.Errorf(codes.FailedPrecondition, "%s uses PVC annotations but the controller has no Kubernetes API access", KeyPathPattern)
		}
	}
	return plan, nil
}

// CreateVolume implements csi.ControllerServer.
func (c *Controller) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	plan, err := c.validateCreate(req)
	if err != nil {
		return nil, err
	}
	release, err := c.busyNames.acquire(plan.name, "volume name")
	if err != nil {
		return nil, err
	}
	defer release()
	ctx, cancel := context.WithTimeout(ctx, c.o.CheckTimeout)
	defer cancel()
	if plan.pattern.needs(refPVCAnnotation) {
		anns, err := c.o.PVCs.PVCAnnotations(ctx, plan.vars.PVCNamespace, plan.vars.PVCName)
		switch {
		case apierrors.IsNotFound(err):
			return nil, status.Errorf(codes.NotFound, "PVC %s/%s not found", plan.vars.PVCNamespace, plan.vars.PVCName)
		case err != nil:
			return nil, status.Errorf(codes.Unavailable, "read PVC %s/%s: %v", plan.vars.PVCNamespace, plan.vars.PVCName, err)
		}
		plan.vars.Annotations = anns
	}
	raw, err := plan.pattern.expand(plan.vars)
	if err != nil {
		return nil, err
	}
	p, err := cleanVolumePath(raw, "model path from "+KeyPathPattern, false)
	if err != nil {
		return nil, err
	}
	if err := checkPrefix(p, plan.prefix, "the StorageClass's "+KeyAllowedPrefix); err != nil {
		return nil, err
	}
	if err := checkPrefix(p, plan.secretPrefix, "the provisioner secret's "+KeyAllowedPrefix); err != nil {
		return nil, err
	}
	m := Model{Volume: plan.volume, Path: p}
	if _, err := c.checker.Check(ctx, plan.metaURL, m); err != nil {
		c.log.Warn("create volume refused", "name", plan.name, "volume", m.Volume, "path", m.Path, "code", status.Code(err).String(), "error", scrub(err, plan.metaURL))
		return nil, err
	}
	id := makeVolumeID(plan.name, m)
	c.log.Info("volume created", "name", plan.name, "id", id, "volume", m.Volume, "path", m.Path)
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId:      id,
		CapacityBytes: 0, // unknown: a model volume is existing, read-only data
		VolumeContext: map[string]string{KeyVolume: m.Volume, KeyPath: m.Path},
	}}, nil
}

// DeleteVolume implements csi.ControllerServer. It never deletes model
// data: a model volume is a reference to data the model repository owns.
func (c *Controller) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	if err := checkID(req.GetVolumeId(), "volume ID"); err != nil {
		return nil, err
	}
	release, err := c.busyIDs.acquire(req.GetVolumeId(), "volume")
	if err != nil {
		return nil, err
	}
	defer release()
	c.log.Info("volume deleted; the model's data is kept", "id", req.GetVolumeId())
	return &csi.DeleteVolumeResponse{}, nil
}

// ValidateVolumeCapabilities implements csi.ControllerServer. It confirms
// the capabilities only when every one is supported (mount access,
// read-only access mode); otherwise it answers with a message and no
// confirmation, as the spec asks.
func (c *Controller) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	id := req.GetVolumeId()
	if err := checkID(id, "volume ID"); err != nil {
		return nil, err
	}
	for what, m := range map[string]map[string]string{"volume context": req.GetVolumeContext(), "parameters": req.GetParameters(), "controller secret": req.GetSecrets()} {
		if err := checkMap(m, what, what == "controller secret"); err != nil {
			return nil, err
		}
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "volume capabilities are required")
	}
	if len(req.GetMutableParameters()) > 0 {
		return nil, status.Error(codes.InvalidArgument, "mutable parameters are not supported")
	}
	pid, ok := parseVolumeID(id)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "volume %q does not exist: it is not a volume ID of %s", id, c.o.DriverName)
	}
	m := Model{Volume: pid.Volume, Path: pid.Path}
	if vc := req.GetVolumeContext(); len(vc) > 0 {
		ref, err := parseVolumeContext(vc)
		if err != nil {
			return nil, err
		}
		if !pid.matches(ref) {
			return nil, status.Errorf(codes.InvalidArgument, "the volume context names %s:%s, not the volume of ID %q", ref.Volume, ref.Path, id)
		}
		m = ref
	} else if m.Path == "" {
		return nil, status.Errorf(codes.InvalidArgument, "volume ID %q holds a digest of a long path: pass the volume context", id)
	}
	if v, ok := req.GetParameters()[KeyVolume]; ok && v != m.Volume {
		return nil, status.Errorf(codes.InvalidArgument, "parameter %q is %q, but the volume is in %q", KeyVolume, v, m.Volume)
	}
	metaURL, err := metaURLFrom(req.GetSecrets(), "controller secret")
	if err != nil {
		return nil, err
	}
	release, err := c.busyIDs.acquire(id, "volume")
	if err != nil {
		return nil, err
	}
	defer release()
	ctx, cancel := context.WithTimeout(ctx, c.o.CheckTimeout)
	defer cancel()
	if _, err := c.checker.Check(ctx, metaURL, m); err != nil {
		return nil, err
	}
	var problems []string
	for _, vc := range req.GetVolumeCapabilities() {
		if msg := capabilityError(vc); msg != "" {
			problems = append(problems, msg)
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return &csi.ValidateVolumeCapabilitiesResponse{Message: strings.Join(problems, "; ")}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
	}}, nil
}
